#pragma once
// Registers the client subcommands on the CLI11 app; each sets `exit_code` when it runs.
#include <CLI/CLI.hpp>

namespace pb::cli {

void AddEchoCommand(CLI::App& app, int& exit_code);
void AddNodesCommand(CLI::App& app, int& exit_code);
void AddStudiesCommand(CLI::App& app, int& exit_code);
void AddFindCommand(CLI::App& app, int& exit_code);
void AddWorklistCommand(CLI::App& app, int& exit_code);
void AddMppsCommand(CLI::App& app, int& exit_code);
void AddRetrieveCommand(CLI::App& app, int& exit_code);
void AddSendCommand(CLI::App& app, int& exit_code);
void AddJobsCommand(CLI::App& app, int& exit_code);
void AddImportCommand(CLI::App& app, int& exit_code);
void AddReceiversCommand(CLI::App& app, int& exit_code);  // also `routing`
void AddProjectsCommand(CLI::App& app, int& exit_code);
void AddStagingCommand(CLI::App& app, int& exit_code);
void AddAccountsCommands(CLI::App& app, int& exit_code);  // users, tokens, audit

}  // namespace pb::cli
