"""Every MESSAGE_ID the daemon logs has an entry in the journal catalog, and the catalog is well-formed."""
import os
import re
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_message_id_is_in_the_catalog():
    used = set()
    for directory, _, names in os.walk(os.path.join(ROOT, "Sources")):
        for name in names:
            if name.endswith(".swift"):
                used |= set(re.findall(r'MessageID = "([0-9a-f]{32})"', open(os.path.join(directory, name)).read()))
    catalog = open(os.path.join(ROOT, "systemd", "edgeplan.catalog")).read()
    entries = re.findall(r"^-- ([0-9a-f]{32})$", catalog, re.M)
    assert len(used) >= 10
    assert used == set(entries), (used - set(entries), set(entries) - used)
    assert len(entries) == len(set(entries))
    for block in catalog.split("\n-- ")[1:]:
        assert "\nSubject: " in block and "\nDefined-By: EdgePlan" in block


def test_journalctl_accepts_the_catalog():
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "usr/lib/systemd/catalog"))
        with open(os.path.join(ROOT, "systemd", "edgeplan.catalog")) as source, open(os.path.join(root, "usr/lib/systemd/catalog/edgeplan.catalog"), "w") as target:
            target.write(source.read())
        update = subprocess.run(["journalctl", f"--root={root}", "--update-catalog"], capture_output=True, text=True)
        assert update.returncode == 0, update.stderr
        listed = subprocess.run(["journalctl", f"--root={root}", "--list-catalog"], capture_output=True, text=True)
        assert "EdgePlan chose a configuration" in listed.stdout


def test_every_placeholder_is_one_journalctl_fills():
    """journalctl -x substitutes only @[A-Z_]+@: a placeholder with a digit or a lower-case letter is printed as it
    stands. Each one must also name a field the daemon writes (as a literal field or a metadata key)."""
    catalog = open(os.path.join(ROOT, "systemd", "edgeplan.catalog")).read()
    placeholders = set(re.findall(r"@([A-Za-z0-9_]+)@", catalog))
    assert len(placeholders) >= 20
    unfillable = {name for name in placeholders if not re.fullmatch(r"[A-Z_]+", name)}
    assert not unfillable, unfillable
    sources = ""
    for directory, _, names in os.walk(os.path.join(ROOT, "Sources")):
        sources += "".join(open(os.path.join(directory, name)).read() for name in names if name.endswith(".swift"))
    unwritten = {name for name in placeholders
                 if f'"{name}"' not in sources and f'"{name.removeprefix("EDGEPLAN_").lower()}"' not in sources}
    assert not unwritten, unwritten
