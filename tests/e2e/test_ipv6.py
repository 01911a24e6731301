"""Receivers bind where they are told: "::" serves IPv6 and IPv4 clients alike (dual stack),
"127.0.0.1" serves only IPv4 loopback.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_ipv6.py
"""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class BindTests(harness.E2ETestCase):

    def test_dual_stack_receiver_serves_ipv6_and_ipv4(self):
        self.assertTrue(have_ipv6_loopback(), "this namespace has no ::1 (IPv6 disabled?)")
        port = harness.free_port()
        srv = self.start_server(receivers=[{"ae_title": "DUAL", "port": port, "bind": "::"}])
        a = harness.DicomAssociation(port, "DUAL", host="::1")
        a.connect()
        a.associate()
        self.assertEqual(a.echo(), 0)
        a.release()
        cp = harness.echoscu(srv.dicom_port, "DUAL")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def test_ipv4_loopback_receiver_is_not_reachable_over_ipv6(self):
        port = harness.free_port()
        self.start_server(receivers=[{"ae_title": "V4ONLY", "port": port, "bind": "127.0.0.1"}])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("::1", port), timeout=5).close()
        cp = harness.echoscu(port, "V4ONLY")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))


if __name__ == "__main__":
    unittest.main()
