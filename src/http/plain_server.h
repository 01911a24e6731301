#pragma once
// cpp-httplib's plain-HTTP server with one buffered stream per connection.
//
// Debian's cpp-httplib (0.11, a compiled library) reads a connection 4 KB at a time, with a
// poll before each read: a 250 MB STOW-RS upload took 128,000 system calls, a third of the
// server's CPU on this kind of VM. Here each connection gets a stream of its own (the library's
// way to serve HTTPS: SSLServer overrides the same hook) whose reads fill a 128 KB buffer, so
// the library's 4 KB reads are copies from memory, and a poll is made only when the buffer is
// empty. Everything else (request parsing, routing, keep-alive limits, timeouts) is the
// library's. The stream lives as long as the connection, so bytes of a pipelined next request
// read with the current one are kept for it.
#include <httplib.h>

namespace pb::http {

class PlainServer : public httplib::Server {
 private:
  bool process_and_close_socket(socket_t sock) override;
};

}  // namespace pb::http
