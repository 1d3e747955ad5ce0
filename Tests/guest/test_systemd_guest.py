"""The units under a real systemd: a Debian 12 guest boots under qemu, installs the project's .deb with dpkg and
runs guest-checks.sh. Every check the guest must report is a test here; a check the guest never reached fails
with the tail of its log. qemu's exit code is never trusted: only the results file the guest writes counts.

EDGEPLAN_DEB names the package to install (scripts/test.sh builds it). Run alone:
    CONFIGURATION=release scripts/package-deb.sh dist && EDGEPLAN_DEB=dist/edgeplan_*.deb python3 -m pytest -q Tests/guest
"""
import glob
import os
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

CHECKS = [
    "boot", "package-installs", "group-created", "units-load", "socket-enabled", "socket-listening",
    "member-served", "socket-activation", "notify-status", "dynamic-user", "nobody-refused",
    "reload-good", "reload-took", "reload-broken-refused", "last-good-policy-kept", "watchdog-quiet",
    "restart-after-kill", "decision-fields", "catalog-filled", "no-priority-noise", "memory", "security",
    "stop-removes-socket",
]


@pytest.fixture(scope="module")
def guest():
    deb = os.environ.get("EDGEPLAN_DEB")
    if not deb:
        pytest.fail("EDGEPLAN_DEB must name the .deb to install in the guest")
    packages = glob.glob(deb)
    assert len(packages) == 1, f"EDGEPLAN_DEB={deb} matches {packages}"
    output = os.environ.get("EDGEPLAN_GUEST_OUTPUT") or tempfile.mkdtemp(prefix="edgeplan-guest-")
    started = time.monotonic()
    run = subprocess.run([os.path.join(HERE, "boot-guest.sh"), packages[0], output], capture_output=True, text=True)
    elapsed = time.monotonic() - started
    print(run.stdout)
    print(f"guest test: {elapsed:.0f} s in all (results in {output})")
    assert run.returncode == 0, run.stdout + run.stderr
    results = {}
    path = os.path.join(output, "checks.txt")
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    for line in lines:
        verdict, _, rest = line.partition(" ")
        name, _, detail = rest.partition(": ")
        if verdict in ("PASS", "FAIL"):
            results[name] = (verdict, detail)
    return {"results": results, "ended": "END" in lines, "output": output}


def tail(path, lines=25):
    try:
        return "\n".join(open(path, errors="replace").read().splitlines()[-lines:])
    except OSError as error:
        return str(error)


@pytest.mark.parametrize("check", CHECKS)
def test_guest_check(guest, check):
    output = guest["output"]
    if check not in guest["results"]:
        pytest.fail(f"the guest never reported '{check}' (ended: {guest['ended']}).\n"
                    f"guest log:\n{tail(os.path.join(output, 'guest.log'))}\nconsole:\n{tail(os.path.join(output, 'console.log'))}")
    verdict, detail = guest["results"][check]
    print(f"{check}: {detail}")
    assert verdict == "PASS", f"{check}: {detail}"


def test_guest_reported_only_known_checks(guest):
    assert guest["ended"], "the guest did not finish its checks"
    assert set(guest["results"]) == set(CHECKS), set(guest["results"]) ^ set(CHECKS)
