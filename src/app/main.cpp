// pacsbridge: the server and its command line.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "app/serve.h"
#include "cli/commands.h"
#include "dicom/network.h"

namespace {

int Run(int argc, char** argv) {
  CLI::App app{"PACS Bridge: find, retrieve, receive and send DICOM images"};
  app.set_version_flag("--version", "pacsbridge " PB_VERSION);
  app.set_help_all_flag("--help-all", "every command with its options");
  app.require_subcommand(1);
  int exit_code = 0;

  std::string config;
  auto* serve = app.add_subcommand("serve", "run the server in the foreground");
  bool strict = false;
  serve->add_option("--config", config, "TOML configuration file (defaults when absent)");
  serve->add_flag("--strict", strict,
                  "exit at start when a receiver cannot listen (as [server] strict = true); otherwise the server "
                  "runs without it and says so in its log and in /api/health");
  serve->callback([&] { exit_code = pb::Serve(config, strict); });

  pb::dicom::InitializeDicomNetwork("warn");
  pb::cli::AddEchoCommand(app, exit_code);
  pb::cli::AddNodesCommand(app, exit_code);
  pb::cli::AddStudiesCommand(app, exit_code);
  pb::cli::AddFindCommand(app, exit_code);
  pb::cli::AddWorklistCommand(app, exit_code);
  pb::cli::AddMppsCommand(app, exit_code);
  pb::cli::AddRetrieveCommand(app, exit_code);
  pb::cli::AddSendCommand(app, exit_code);
  pb::cli::AddJobsCommand(app, exit_code);
  pb::cli::AddImportCommand(app, exit_code);
  pb::cli::AddReceiversCommand(app, exit_code);
  pb::cli::AddProjectsCommand(app, exit_code);
  pb::cli::AddStagingCommand(app, exit_code);
  pb::cli::AddAccountsCommands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (...) {
    // Nothing should get here; if something does, say so plainly rather than abort.
    std::fputs("pacsbridge: an internal error ended the command\n", stderr);
    return 70;  // EX_SOFTWARE
  }
}
