#include <iostream>

#include "cli/commands.h"
#include "core/validate.h"
#include "dicom/echo.h"

namespace pb::cli {

void AddEchoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("echo", "C-ECHO a DICOM peer directly (no server needed)");
  auto rq = std::make_shared<dicom::EchoRequest>();
  auto host = std::make_shared<std::string>();
  auto port = std::make_shared<int>(104);
  rq->calling_ae = "PACSBRIDGE";
  cmd->add_option("--aet", rq->called_ae, "the peer's AE title (case matters)")->required();
  cmd->add_option("--host", *host, "the peer's host name or IP address")->required();
  cmd->add_option("--port", *port, "the peer's DICOM port")->required();
  cmd->add_option("--calling-aet", rq->calling_ae, "our AE title")->capture_default_str();
  cmd->add_option("--timeout", rq->timeout_seconds, "seconds to wait")->capture_default_str();
  cmd->add_flag("--tls", rq->tls, "use TLS (BCP 195 profile)");
  cmd->add_option("--tls-ca-file", rq->tls_ca_file, "PEM certificate(s) to trust (else the system's)");
  cmd->add_option("--tls-cert-file", rq->tls_cert_file, "our PEM certificate, when the peer asks for one");
  cmd->add_option("--tls-key-file", rq->tls_key_file, "our PEM private key");
  cmd->add_flag("!--tls-no-verify", rq->tls_verify_peer, "do not verify the peer's certificate");
  cmd->add_flag("!--tls-no-hostname-check", rq->tls_verify_hostname,
                "accept a trusted certificate that does not name --host");
  cmd->callback([=, &exit_code] {
    auto ae = ValidateAeTitle(rq->called_ae, "--aet");
    auto calling = ValidateAeTitle(rq->calling_ae, "--calling-aet");
    auto h = ValidateHost(*host, "--host");
    auto p = ValidatePort(*port, "--port");
    for (const Error* e : {ae ? nullptr : &ae.error(), calling ? nullptr : &calling.error(), h ? nullptr : &h.error(),
                           p ? nullptr : &p.error()}) {
      if (e) {
        std::cerr << e->message << "\n";
        exit_code = 2;
        return;
      }
    }
    dicom::EchoRequest r = *rq;
    r.called_ae = *ae;
    r.calling_ae = *calling;
    r.host = *h;
    r.port = *p;
    dicom::EchoResult res = dicom::Echo(r);
    if (res.ok) {
      std::cout << res.message << " (" << res.latency_ms << " ms)\n";
      exit_code = 0;
    } else {
      std::cerr << res.message << "\n";
      exit_code = 1;
    }
  });
}

}  // namespace pb::cli
