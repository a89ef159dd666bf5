"""postern beside a real Postfix (docs/postfix.md), both private instances on loopback:
(a) Postfix routes a robot subdomain to postern over LMTP with transport_maps, and postern's
rules deliver it; an unknown robot address is refused by postern at RCPT and Postfix bounces it;
(c) postern relays its own mail through Postfix (relayhost), which delivers it on."""
import os
import smtplib
import subprocess

import harness
from harness import Daemon
from postfix import Postfix
from sink import Sink


def cli(d, *args):
    return subprocess.run([harness.BIN, *args, "-c", d.conf_path], capture_output=True, text=True,
                          timeout=30, env=d.env())


def test_robot_subdomain_over_lmtp_and_relay_through_postfix():
    with Sink() as robot, Sink() as outside:
        d = Daemon()
        rules = os.path.join(d.dir, "transport.rules")
        with open(rules, "w") as f:
            f.write("team@robots.test   smtp:[127.0.0.1]:%d\n" % robot.port)
        pf_settings = {
            "relay_domains": "robots.test",
            "transport_maps": "inline:{ robots.test=lmtp:inet:[127.0.0.1]:%d, "
                              "elsewhere.test=smtp:[127.0.0.1]:%d }" % (d.lmtp_port, outside.port),
        }
        with Postfix(pf_settings) as pf, d:
            d.settings.update({"delivery_paused": "no", "relay_domains": "",
                               "transport_rules": rules, "relayhost": "[127.0.0.1]:%d" % pf.port,
                               "smtp_tls_security_level": "none"})
            d.write_config()
            d.start()
            assert cli(d, "alias", "add", "info@robots.test", "team@robots.test").returncode == 0
            # (a) the Internet -> Postfix -> LMTP -> postern -> its robot
            c = smtplib.SMTP("127.0.0.1", pf.port, timeout=30)
            try:
                c.sendmail("someone@elsewhere.test", ["info@robots.test", "nobody@robots.test"],
                           b"Subject: to a robot\r\nMessage-ID: <pf1@elsewhere.test>\r\n\r\nhello\r\n")
            finally:
                c.quit()
            got = robot.wait(1, timeout=40)
            assert got[0]["accepted"] == ["team@robots.test"], got
            assert b"hello" in got[0]["data"]
            assert "with LMTP" in got[0]["data"].decode(errors="replace")
            # nobody@ is unknown in an alias domain: postern said 550 5.1.1 to Postfix's LMTP
            # client, and Postfix returned the mail to its sender (elsewhere.test, the outside sink)
            bounce = outside.wait(1, timeout=40)
            assert "FROM:<>" in bounce[0]["mail"] and bounce[0]["accepted"] == ["someone@elsewhere.test"]
            text = bounce[0]["data"].decode(errors="replace")
            assert "nobody@robots.test" in text and "5.1.1" in text, text
            # (c) postern's own mail (here from postern sendmail) goes out through Postfix
            r = subprocess.run([harness.BIN, "sendmail", "-f", "robot@robots.test", "user@elsewhere.test"],
                               input=b"Subject: a reply\r\n\r\nfrom the robot\r\n", capture_output=True,
                               timeout=30, env=d.env())
            assert r.returncode == 0, r.stderr
            got = outside.wait(2, timeout=40)
            out = [m for m in got if m["accepted"] == ["user@elsewhere.test"]]
            assert out and b"from the robot" in out[0]["data"], got
            assert "relay=127.0.0.1" in pf.logtext() or "status=sent" in pf.logtext(), pf.logtext()[-2000:]


if __name__ == "__main__":
    harness.run_tests(globals())
