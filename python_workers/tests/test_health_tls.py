"""`python -m pds_dpo_workers health` over TLS: the Kubernetes exec probe of a worker pod.

Two real workers (the tiny clip-scorer, started together) serve TLS with a certificate
made here by a CA made here. The certificate names a Service (scorer-0.pds-dpo.svc), not
127.0.0.1, so only --tls-server-name makes the probe's dial to 127.0.0.1 verify. One
worker is the Kubernetes render's (TLS and a bearer token); the other also requires
client certificates (--tls-client-ca).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from pds_dpo_workers.proto import worker_pb2, worker_pb2_grpc
from worker_harness import PYTHON, SCORER_MODEL, start_worker, worker_env

SERVER_NAME = "scorer-0.pds-dpo.svc"
TOKEN_ENV = "PDS_DPO_WORKER_TOKEN"

_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = pds-dpo test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:{name}
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_pki(d: Path) -> dict[str, Path]:
    """A CA, a certificate for SERVER_NAME (server and client use) signed by it, and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d.mkdir(parents=True, exist_ok=True)
    (d / "openssl.cnf").write_text(_CNF.format(name=SERVER_NAME))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "wrong-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                 "-config", "openssl.cnf", "-extensions", "ca", "-subj", f"/CN={ca}", cwd=d)  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-config", "openssl.cnf", "-subj", f"/CN={SERVER_NAME}", cwd=d)
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "2", "-days", "2",
             "-extfile", "openssl.cnf", "-extensions", "leaf", "-out", "tls.crt", cwd=d)  # fmt: skip
    return {"ca": d / "ca.crt", "wrong-ca": d / "wrong-ca.crt", "tls": d / "tls.crt", "tls-key": d / "tls.key"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def workers(pki, store_dir, log_dir):
    """{"tls": the render's worker (TLS + bearer token), "mtls": one requiring client certificates}."""
    tls = ("--tls-cert", str(pki["tls"]), "--tls-key", str(pki["tls-key"]))
    before = os.environ.get(TOKEN_ENV)
    # worker_env() copies os.environ when each worker starts: both demand the token.
    os.environ[TOKEN_ENV] = "probe-test-token"
    try:
        # Started together, so their torch imports overlap (concurrent tiny builds are safe).
        with ThreadPoolExecutor(2) as pool:
            futures = {
                "tls": pool.submit(start_worker, "image-scorer", SCORER_MODEL, store_dir, log_dir, extra_args=tls),
                "mtls": pool.submit(start_worker, "image-scorer", SCORER_MODEL, store_dir, log_dir, extra_args=(*tls, "--tls-client-ca", str(pki["ca"]))),
            }
            started = {}
            errors = []
            for name, f in futures.items():
                try:
                    started[name] = f.result()
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
    finally:
        if before is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = before
    if errors:
        for w in started.values():
            w.terminate(timeout=5)
        raise errors[0]
    yield started
    for name, w in started.items():
        rc = w.terminate()
        assert rc == 0, f"{name} worker exited with {rc} after SIGTERM\n{w.log_tail()}"


def health(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "pds_dpo_workers", "health", *args], capture_output=True, text=True, timeout=60, env=worker_env())


def one_line(text: str) -> str:
    """The one line a failed probe prints (never a traceback, never gRPC's own logs)."""
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert "Traceback" not in text
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- against the TLS worker ---------------------------------------------------------------------


def test_tls_with_the_ca_and_the_service_name_is_serving(workers, pki):
    r = health("--address", workers["tls"].address, "--tls-ca", str(pki["ca"]), "--tls-server-name", SERVER_NAME)
    assert (r.returncode, r.stdout, r.stderr) == (0, "SERVING\n", "")


def test_health_needs_no_bearer_token_though_the_worker_demands_one(workers, pki):
    creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    with grpc.secure_channel(workers["tls"].address, creds, options=[("grpc.ssl_target_name_override", SERVER_NAME)]) as channel:
        with pytest.raises(grpc.RpcError) as err:
            worker_pb2_grpc.WorkerServiceStub(channel).Describe(worker_pb2.DescribeRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # ...while the probe, which sends no token, passed above (and here).
    r = health("--address", workers["tls"].address, "--tls-ca", str(pki["ca"]), "--tls-server-name", SERVER_NAME)
    assert r.returncode == 0, r.stderr


def test_a_wrong_ca_fails_with_one_line(workers, pki):
    address = workers["tls"].address
    r = health("--address", address, "--tls-ca", str(pki["wrong-ca"]), "--tls-server-name", SERVER_NAME)
    assert r.returncode == 1 and r.stdout == ""
    line = one_line(r.stderr)
    assert line.startswith(f"pds_dpo_workers: {address}: UNAVAILABLE: TLS handshake failed: "), line
    assert "not signed by --tls-ca" in line and "CERTIFICATE_VERIFY_FAILED" in line, line


def test_without_the_server_name_127_0_0_1_does_not_match_the_certificate(workers, pki):
    address = workers["tls"].address
    r = health("--address", address, "--tls-ca", str(pki["ca"]))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert line == (
        f"pds_dpo_workers: {address}: UNAVAILABLE: TLS handshake failed: "
        "the worker's certificate does not name the host of --address (pass --tls-server-name)"
    )
    r = health("--address", address, "--tls-ca", str(pki["ca"]), "--tls-server-name", "scorer-1.pds-dpo.svc")
    assert r.returncode == 1
    assert "does not name 'scorer-1.pds-dpo.svc'" in one_line(r.stderr)


def test_plaintext_against_the_tls_port_fails_with_one_line(workers):
    address = workers["tls"].address
    r = health("--address", address)
    assert r.returncode == 1 and r.stdout == ""
    line = one_line(r.stderr)
    assert line.startswith(f"pds_dpo_workers: {address}: UNAVAILABLE"), line
    assert "pass --tls-ca" in line, line


# -- against the worker requiring client certificates ---------------------------------------------


def test_client_certificate_for_a_worker_with_tls_client_ca(workers, pki):
    address = workers["mtls"].address
    common = ("--address", address, "--tls-ca", str(pki["ca"]), "--tls-server-name", SERVER_NAME)
    r = health(*common)
    assert r.returncode == 1
    assert "does it require a client certificate? pass --tls-cert and --tls-key" in one_line(r.stderr)
    r = health(*common, "--tls-cert", str(pki["tls"]), "--tls-key", str(pki["tls-key"]))
    assert (r.returncode, r.stdout, r.stderr) == (0, "SERVING\n", "")


# -- no worker needed ------------------------------------------------------------------------------


def test_a_missing_ca_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "tls" / "ca.crt"
    r = health("--address", "127.0.0.1:1", "--tls-ca", str(missing), "--tls-server-name", SERVER_NAME)
    assert r.returncode == 2 and r.stdout == ""
    assert one_line(r.stderr) == f"pds_dpo_workers: --tls-ca {missing}: No such file or directory"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--tls-ca", "{not_pem}"), "--tls-ca {not_pem}: not a PEM file"),
        (("--tls-ca", "{ca}", "--tls-cert", "{missing}", "--tls-key", "{key}"), "--tls-cert {missing}: No such file or directory"),
        (("--tls-ca", "{ca}", "--tls-cert", "{cert}"), "--tls-cert and --tls-key go together"),
        (("--tls-server-name", SERVER_NAME), "--tls-server-name needs --tls-ca"),
    ],
    ids=["not-pem", "missing-client-cert", "cert-without-key", "server-name-without-ca"],
)
def test_unusable_tls_options_exit_2_with_one_line(pki, tmp_path, args, message):
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    paths = {"not_pem": not_pem, "ca": pki["ca"], "cert": pki["tls"], "key": pki["tls-key"], "missing": tmp_path / "nope.crt"}
    r = health("--address", "127.0.0.1:1", *(a.format(**paths) for a in args))
    assert r.returncode == 2
    assert one_line(r.stderr) == "pds_dpo_workers: " + message.format(**paths)


def test_nothing_listening_is_connection_refused_and_the_probe_stays_light(pki):
    address = f"127.0.0.1:{free_port()}"
    r = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "pds_dpo_workers", "health", "--address", address, "--tls-ca", str(pki["ca"]), "--tls-server-name", SERVER_NAME],
        capture_output=True, text=True, timeout=60, env=worker_env(),
    )  # fmt: skip
    assert r.returncode == 1
    timings = [line for line in r.stderr.splitlines() if line.startswith("import time:")]
    rest = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert rest == [f"pds_dpo_workers: {address}: UNAVAILABLE: connection refused"]
    imported = {line.split("|")[-1].strip() for line in timings}
    assert "grpc" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in {"torch", "transformers", "diffusers", "numpy", "PIL", "open_clip", "safetensors"})
    assert heavy == [], f"the probe imports {heavy}"
