"""A real PostgreSQL for the fleet tests: Debian's server, initialized in a temporary directory with initdb and
started with pg_ctl on a Unix socket (and, for the TLS test, on 127.0.0.1 with a certificate of its own CA),
password authentication (scram-sha-256) for every role."""
import glob
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDGEPLAN = os.environ.get("EDGEPLAN_BIN", os.path.join(ROOT, ".build", "debug", "edgeplan"))
OWNER = "fleet_owner"


def server_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    assert found, "PostgreSQL's server is not installed (scripts/setup.sh --tests installs Debian's postgresql)"
    return os.path.dirname(found[-1])


class Postgres:
    """A PostgreSQL cluster of the test's own; as root, its processes run as the postgres user (initdb refuses root)."""

    def __init__(self, directory, port, tls=False):
        self.directory = directory
        self.tls = tls
        # With tls, whether the server offers it (a test turns it off and restarts).
        self.ssl = tls
        self.port = port
        self.bin = server_bin()
        self.socket_dir = os.path.join(directory, "sock")
        self.data = os.path.join(directory, "data")
        self.owner_password_file = os.path.join(directory, "owner-password")
        os.makedirs(self.socket_dir)
        with open(self.owner_password_file, "w") as handle:
            handle.write("owner-secret\n")
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
            shutil.chown(self.owner_password_file, "postgres", "postgres")
        if tls:
            self.make_certificates()
        self.as_server([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", OWNER, "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256", f"--pwfile={self.owner_password_file}"])
        self.start()
        self.psql("CREATE DATABASE edgeplan_fleet", database="postgres")

    def as_server(self, command):
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--"] + command
        subprocess.run(command, check=True, capture_output=True, text=True)

    def make_certificates(self):
        """A fleet CA of the test's own, a server certificate it signed for localhost and 127.0.0.1, and a second CA
        that signed nothing here (an impostor's)."""
        tls = os.path.join(self.directory, "tls")
        os.makedirs(tls)
        run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tls)
        for name in ["ca", "impostor-ca"]:
            run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                "-days", "2", "-subj", f"/CN=EdgePlan test {name}")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
        with open(os.path.join(tls, "san.ext"), "w") as handle:
            handle.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "server.pem", "-days", "2", "-extfile", "san.ext")
        # A robot's client certificate: its common name is its role.
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "r2.key", "-out", "r2.csr", "-subj", "/CN=r2")
        run("x509", "-req", "-in", "r2.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "r2.pem",
            "-days", "2")
        os.chmod(os.path.join(tls, "server.key"), 0o600)
        if os.geteuid() == 0:
            for name in os.listdir(tls):
                shutil.chown(os.path.join(tls, name), "postgres", "postgres")
        self.ca_file = os.path.join(tls, "ca.pem")
        self.impostor_ca_file = os.path.join(tls, "impostor-ca.pem")
        self.client_cert_file = os.path.join(tls, "r2.pem")
        self.client_key_file = os.path.join(tls, "r2.key")

    def start(self):
        options = f"-k {self.socket_dir} -c listen_addresses='' -p {self.port}"
        if self.tls:
            tls = os.path.join(self.directory, "tls")
            options = (f"-k {self.socket_dir} -c listen_addresses=127.0.0.1 -p {self.port} -c ssl={'on' if self.ssl else 'off'} "
                       f"-c ssl_cert_file={tls}/server.pem -c ssl_key_file={tls}/server.key -c ssl_ca_file={tls}/ca.pem "
                       "-c log_connections=on")
        self.as_server([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", os.path.join(self.directory, "log"),
                        "-o", options, "-w", "start"])

    def authenticate_by_certificate(self, role):
        """Puts a rule first in pg_hba.conf: `role` logs in over TLS by a certificate of the CA, and no other way."""
        path = os.path.join(self.data, "pg_hba.conf")
        rules = open(path).read()
        with open(path, "w") as handle:
            handle.write(f"hostssl edgeplan_fleet {role} 127.0.0.1/32 cert\nhost all {role} 0.0.0.0/0 reject\n" + rules)
        self.psql("SELECT pg_reload_conf()")

    def log(self):
        with open(os.path.join(self.directory, "log")) as handle:
            return handle.read()

    def stop(self, mode="fast"):
        self.as_server([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"])

    def psql(self, sql, user=OWNER, password="owner-secret", database="edgeplan_fleet", check=True):
        """Runs SQL as a role; returns psql's result (unaligned, tuples only)."""
        env = dict(os.environ, PGPASSWORD=password)
        result = subprocess.run(["psql", "-h", self.socket_dir, "-p", str(self.port), "-U", user, "-d", database,
                                 "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], capture_output=True, text=True, env=env)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def admin_args(self):
        return ["--host", self.socket_dir, "--port", str(self.port), "--user", OWNER, "--password-file",
                self.owner_password_file]


@pytest.fixture
def postgres(request):
    """The server; a test marked `tls` gets one that also listens on 127.0.0.1 with TLS, its certificate signed by
    a CA of the test's own."""
    directory = tempfile.mkdtemp(prefix="ep-fleet-", dir="/tmp")
    server = Postgres(directory, 54000 + os.getpid() % 1000, tls=request.node.get_closest_marker("tls") is not None)
    yield server
    try:
        server.stop("immediate")
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(directory, ignore_errors=True)


def edgeplan(*args, check=True, timeout=120):
    result = subprocess.run([EDGEPLAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def pytest_configure(config):
    config.addinivalue_line("markers", "tls: the server also listens on 127.0.0.1 with TLS")
