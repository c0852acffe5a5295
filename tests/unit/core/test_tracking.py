import contextlib
import datetime
import http.server
import ipaddress
import json
import ssl
import threading

import pytest

from mlops_actions.core import tracking as trk
from mlops_actions.core.errors import InputError

# -- resolution order and sources ---------------------------------------------------------------


def test_default_is_sqlite_in_workspace(tmp_path):
    t = trk.resolve("", "", workspace=str(tmp_path), env={})
    assert t.uri == f"sqlite:///{tmp_path.resolve()}/.mlops/mlflow.db"
    assert t.local_artifact_root().endswith("/.mlops/mlartifacts")
    assert t.source == trk.SOURCE_DEFAULT == "workspace sqlite (nothing set)"
    assert t.describe().startswith(f"sqlite:///{tmp_path.resolve()}/.mlops/mlflow.db (workspace sqlite store: no tracking-uri")


def test_dagshub_derives_uri_and_needs_credentials():
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "tok"}
    t = trk.resolve("", "alice/rice", env=env)
    assert t.uri == "https://dagshub.com/alice/rice.mlflow"
    assert t.run_url("3", "abc") == "https://dagshub.com/alice/rice.mlflow/#/experiments/3/runs/abc"
    assert t.source == "dagshub-repo input" and t.describe() == "https://dagshub.com/alice/rice.mlflow (from dagshub-repo input)"
    with pytest.raises(InputError, match="DagsHub needs credentials") as err:
        trk.resolve("", "alice/rice", env={})
    assert err.value.input_name == "dagshub-repo" and "DAGSHUB_USER_TOKEN" in err.value.line()


@pytest.mark.parametrize("uri,needle", [("ftp://x", "no supported scheme"), ("https://u:pw@host", "contains a password")])
def test_bad_uris(uri, needle):
    with pytest.raises(InputError, match=needle) as err:
        trk.resolve(uri, "", env={})
    assert err.value.input_name == "tracking-uri"


def test_both_inputs_refused():
    with pytest.raises(InputError, match="only one"):
        trk.resolve("http://x", "a/b", env={})


def test_display_uri_drops_userinfo():
    assert trk.Tracking("https://user@host:5000/p").display_uri == "https://host:5000/p"


ENV_URI = {"MLFLOW_TRACKING_URI": "http://env-host:5000"}


@pytest.mark.parametrize("uri_input,dagshub,env,uri,source", [
    ("http://input-host:5000", "", ENV_URI, "http://input-host:5000", "tracking-uri input"),
    ("", "alice/rice", dict(ENV_URI, DAGSHUB_USER_TOKEN="t"), "https://dagshub.com/alice/rice.mlflow", "dagshub-repo input"),
    ("", "", ENV_URI, "http://env-host:5000", "MLFLOW_TRACKING_URI"),
    ("  ", " ", {"MLFLOW_TRACKING_URI": "  http://env-host:5000 \n"}, "http://env-host:5000", "MLFLOW_TRACKING_URI"),
    ("", "", {"MLFLOW_TRACKING_URI": "   "}, None, "workspace sqlite (nothing set)"),
    ("", "", {}, None, "workspace sqlite (nothing set)"),
    ("", "", {"MLFLOW_TRACKING_URI": "databricks"}, "databricks", "MLFLOW_TRACKING_URI"),
], ids=["input-beats-env", "dagshub-beats-env", "env", "env-trimmed", "blank-env-is-unset", "nothing", "databricks"])
def test_resolution_order(uri_input, dagshub, env, uri, source, tmp_path):
    t = trk.resolve(uri_input, dagshub, workspace=str(tmp_path), env=env)
    assert t.source == source
    assert t.uri == (uri or trk.default_uri(tmp_path))


def test_env_uri_is_described_and_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    t = trk.resolve("", "")
    assert t.uri == "http://127.0.0.1:5000" and t.source == "MLFLOW_TRACKING_URI"
    assert t.describe() == "http://127.0.0.1:5000 (from MLFLOW_TRACKING_URI)"
    assert t.input_name == "MLFLOW_TRACKING_URI"


def test_directly_built_tracking_keeps_its_old_shape():
    t = trk.Tracking(uri="http://h:1")
    assert t.source == "" and t.input_name == "tracking-uri" and t.describe() == "http://h:1"
    assert t.auth is None and t.http_options() == {"verify": True}


@pytest.mark.parametrize("value,needle", [
    ("ftp://host/x", "has no supported scheme"),
    ("just-a-path", "has no supported scheme"),
    ("https://bob:hunter2-secret@host:5000", "contains a password"),
    ("http://", "has no host"),
])
def test_env_uri_is_validated_like_the_input_and_named(value, needle, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(InputError) as err:
        trk.resolve("", "", env={"MLFLOW_TRACKING_URI": value})
    line = err.value.line()
    assert err.value.input_name == "MLFLOW_TRACKING_URI" and needle in line and "; fix: " in line
    assert "\n" not in line and "hunter2" not in line
    if "hunter2" in value:
        assert "remove it from MLFLOW_TRACKING_URI" in line
        assert "::add-mask::hunter2-secret" in capsys.readouterr().out


# -- redaction and masking ----------------------------------------------------------------------


@pytest.mark.parametrize("uri,shown", [
    ("http://h:5000/?token=abc123", "http://h:5000/?token=***"),
    ("https://h/mlflow?access_token=abc&experiment=7", "https://h/mlflow?access_token=***&experiment=7"),
    ("https://h/?X-Amz-Signature=s1&X-Amz-Credential=c1&X-Amz-Security-Token=t1&X-Amz-Date=2024",
     "https://h/?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Date=2024"),
    ("https://h/?sv=2022&sig=azsig&se=2030", "https://h/?sv=2022&sig=***&se=2030"),
    ("https://h/?password=p&key=k&api_key=a&apiKey=b&client_secret=c&monkey=banana",
     "https://h/?password=***&key=***&api_key=***&apiKey=***&client_secret=***&monkey=banana"),
    ("https://user:pw@h:5000/x?token=t#access_token=f", "https://h:5000/x?token=***#access_token=***"),
    ("https://ghp_0123456789abcdef0123@h/", "https://h/"),
    ("http://h:5000/path?page=2", "http://h:5000/path?page=2"),
    ("sqlite:////tmp/x/.mlops/mlflow.db", "sqlite:////tmp/x/.mlops/mlflow.db"),
    ("postgresql://app:dbpw@db:5432/mlflow?sslmode=require&password=q", "postgresql://db:5432/mlflow?sslmode=require&password=***"),
])
def test_display_uri_strips_userinfo_and_redacts_secret_parameters(uri, shown):
    assert trk.Tracking(uri).display_uri == shown


def test_secret_query_values_are_masked_never_shown(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    t = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": "https://h.example/?token=tok%2Fsecret99&x=1"})
    out = capsys.readouterr().out
    assert "::add-mask::tok%252Fsecret99" in out and "::add-mask::tok/secret99" in out  # escaped: the runner masks tok%2Fsecret99
    for text in (t.display_uri, t.describe(), t.run_url("1", "r"), repr(t)):
        assert "secret99" not in text
    assert t.run_url("1", "r") == "https://h.example/#/experiments/1/runs/r"
    assert t.display_uri == "https://h.example/?token=***&x=1"


def test_repr_never_shows_password_or_token():
    t = trk.Tracking(uri="http://h", username="u", password="pw-secret", token="tok-secret")
    assert "pw-secret" not in repr(t) and "tok-secret" not in repr(t)


# -- credentials --------------------------------------------------------------------------------


def masks(out: str) -> set[str]:
    return {line.removeprefix("::add-mask::") for line in out.splitlines() if line.startswith("::add-mask::")}


def test_basic_credentials_are_masked(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    t = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": "http://h:5000", "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw1"})
    assert (t.username, t.password, t.token, t.auth) == ("alice", "pw1", None, "basic")
    assert t.credentials_from == "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
    assert t.http_options() == {"verify": True, "auth": ("alice", "pw1")}
    assert masks(capsys.readouterr().out) == {"pw1"}


def test_token_is_a_bearer_token_and_masked(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    t = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": "https://h", "MLFLOW_TRACKING_TOKEN": "tok-1"})
    assert t.auth == "bearer" and t.credentials_from == "MLFLOW_TRACKING_TOKEN"
    assert t.http_options() == {"verify": True, "headers": {"Authorization": "Bearer tok-1"}}
    assert masks(capsys.readouterr().out) == {"tok-1"}


def test_basic_wins_over_a_token_like_mlflow_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    env = {"MLFLOW_TRACKING_URI": "https://h", "MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p", "MLFLOW_TRACKING_TOKEN": "t"}
    t = trk.resolve("", "", env=env)
    assert t.auth == "basic" and t.token == "t"
    out = capsys.readouterr().out
    assert masks(out) == {"p", "t"} and "::warning::both MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD and MLFLOW_TRACKING_TOKEN" in out


@pytest.mark.parametrize("env,username,password,token,source_vars", [
    ({"DAGSHUB_USER_TOKEN": "dh"}, "dh", "dh", None, "DAGSHUB_USER_TOKEN"),
    ({"DAGSHUB_USER_TOKEN": "dh", "DAGSHUB_USERNAME": "alice"}, "alice", "dh", None, "DAGSHUB_USERNAME/DAGSHUB_USER_TOKEN"),
    ({"DAGSHUB_USER_TOKEN": "dh", "MLFLOW_TRACKING_USERNAME": "alice"}, "alice", "dh", None, "MLFLOW_TRACKING_USERNAME/DAGSHUB_USER_TOKEN"),
    ({"DAGSHUB_USER_TOKEN": "dh", "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw"}, "alice", "pw", None,
     "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"),
    ({"DAGSHUB_USER_TOKEN": "dh", "MLFLOW_TRACKING_TOKEN": "mt"}, None, None, "mt", "MLFLOW_TRACKING_TOKEN"),
])
def test_dagshub_token_the_ways_dagshub_documents(env, username, password, token, source_vars, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    t = trk.resolve("", "", env=dict(env, MLFLOW_TRACKING_URI="https://dagshub.com/alice/rice.mlflow"))
    assert (t.username, t.password, t.token, t.credentials_from) == (username, password, token, source_vars)
    assert "dh" in masks(capsys.readouterr().out)


def test_dagshub_repo_input_works_with_the_token_alone():
    t = trk.resolve("", "alice/rice", env={"DAGSHUB_USER_TOKEN": "dh"})
    assert t.uri == "https://dagshub.com/alice/rice.mlflow" and t.auth == "basic" and (t.username, t.password) == ("dh", "dh")
    assert trk.resolve("", "alice/rice", env={"MLFLOW_TRACKING_TOKEN": "mt"}).auth == "bearer"


def test_a_dagshub_token_is_never_sent_to_another_host():
    t = trk.resolve("https://mlflow.example.com", "", env={"DAGSHUB_USER_TOKEN": "dh", "MLFLOW_TRACKING_USERNAME": "alice"})
    assert t.password is None and t.auth is None
    custom = trk.resolve("https://hub.acme.internal/a/b.mlflow", "", env={"DAGSHUB_USER_TOKEN": "dh", "DAGSHUB_CLIENT_HOST": "https://hub.acme.internal"})
    assert custom.auth == "basic" and custom.password == "dh"


# -- TLS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,insecure", [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False), ("", False)])
def test_insecure_tls_is_read_like_mlflow(value, insecure):
    t = trk.resolve("https://h", "", env={"MLFLOW_TRACKING_INSECURE_TLS": value})
    assert t.insecure_tls is insecure and t.verify is (not insecure)


def test_insecure_tls_garbage_and_conflicts_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="'yes' is not true or false") as err:
        trk.resolve("https://h", "", env={"MLFLOW_TRACKING_INSECURE_TLS": "yes"})
    assert err.value.input_name == "MLFLOW_TRACKING_INSECURE_TLS"
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(InputError, match="MLFLOW_TRACKING_SERVER_CERT_PATH") as err:
        trk.resolve("https://h", "", env={"MLFLOW_TRACKING_INSECURE_TLS": "true", "MLFLOW_TRACKING_SERVER_CERT_PATH": str(ca)})
    assert err.value.input_name == "MLFLOW_TRACKING_INSECURE_TLS"
    with pytest.raises(InputError, match="does not exist") as err:
        trk.resolve("https://h", "", env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(tmp_path / "nope.pem")})
    assert err.value.input_name == "MLFLOW_TRACKING_SERVER_CERT_PATH"


def test_cert_paths_become_absolute_and_are_ignored_for_sqlite(tmp_path, monkeypatch):
    (tmp_path / "ca.pem").write_text("x")
    monkeypatch.chdir(tmp_path)
    t = trk.resolve("https://h", "", env={"MLFLOW_TRACKING_SERVER_CERT_PATH": "ca.pem", "MLFLOW_TRACKING_CLIENT_CERT_PATH": "ca.pem"})
    assert t.server_cert_path == t.client_cert_path == str(tmp_path / "ca.pem")
    assert t.http_options() == {"verify": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "ca.pem")}
    local = trk.resolve("", "", workspace=str(tmp_path), env={"MLFLOW_TRACKING_INSECURE_TLS": "garbage"})
    assert local.uri.startswith("sqlite:") and not local.insecure_tls


@pytest.mark.parametrize("env", [
    {}, {"MLFLOW_TRACKING_INSECURE_TLS": "true"}, {"MLFLOW_TRACKING_INSECURE_TLS": "0"}, {"MLFLOW_TRACKING_SERVER_CERT_PATH": "CA"},
])
def test_verify_equals_mlflows_host_creds(env, tmp_path, monkeypatch):
    from mlflow.utils.credentials import get_default_host_creds

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {k: (str(ca) if v == "CA" else v) for k, v in env.items()}
    for name in ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert trk.resolve("https://h", "", env=env).verify == get_default_host_creds("https://h").verify


# -- preflight against a real loopback server ---------------------------------------------------


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP(S) server that records request headers and answers ``status`` (or 401 when
    ``require`` is set and the Authorization header differs)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, str]] = []
        self.status = 200
        self.require: str | None = None

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        status = self.server.status
        if self.server.require is not None and self.headers.get("Authorization") != self.server.require:
            status = 401
        body = json.dumps({"experiments": []} if status == 200 else {"error_code": "UNAUTHENTICATED"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(tls: ssl.SSLContext | None = None):
    server = Recorder()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server():
    with serve() as srv:
        yield srv


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"MLFLOW_TRACKING_TOKEN": "tok-abc"}, "Bearer tok-abc"),
    ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw"}, "Basic YWxpY2U6cHc="),
    ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_TRACKING_TOKEN": "tok-abc"}, "Basic YWxpY2U6cHc="),
    ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_TOKEN": "tok-abc"}, "Bearer tok-abc"),
], ids=["none", "token", "basic", "basic-and-token", "half-basic-and-token"])
def test_preflight_sends_what_the_mlflow_client_sends(env, expected, server, monkeypatch):
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    tracking = trk.resolve("", "", env=dict(env, MLFLOW_TRACKING_URI=server.url))
    trk.preflight(tracking)
    ours = server.seen[-1]
    assert ours["path"].startswith("/api/2.0/mlflow/experiments/search")
    assert ours.get("authorization") == expected
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    http_request(get_default_host_creds(server.url), "/api/2.0/mlflow/experiments/search", "GET", max_retries=0, params={"max_results": 1})
    assert server.seen[-1].get("authorization") == ours.get("authorization")


@pytest.mark.parametrize("env,named,why", [
    ({"MLFLOW_TRACKING_TOKEN": "wrong"}, "MLFLOW_TRACKING_TOKEN", "token refused"),
    ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "wrong"}, "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD", "credentials refused"),
    ({}, "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD", "no credentials given"),
    ({"MLFLOW_TRACKING_USERNAME": "alice"}, "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD",
     "MLFLOW_TRACKING_USERNAME is set but MLFLOW_TRACKING_PASSWORD is not"),
])
def test_401_names_the_credentials_that_were_sent(env, named, why, server):
    server.require = "Bearer right"
    tracking = trk.resolve("", "", env=dict(env, MLFLOW_TRACKING_URI=server.url))
    with pytest.raises(InputError) as err:
        trk.preflight(tracking)
    line = err.value.line()
    assert err.value.input_name == named and "HTTP 401" in line and why in line and "wrong" not in line
    assert len(server.seen) == 1  # a 401 is not retried


def test_403_and_a_right_token(server):
    server.require = "Bearer right"
    trk.preflight(trk.resolve("", "", env={"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_TOKEN": "right"}))
    server.require, server.status = None, 403
    with pytest.raises(InputError, match="HTTP 403 .this token may not do this") as err:
        trk.preflight(trk.resolve("", "", env={"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_TOKEN": "right"}))
    assert err.value.input_name == "MLFLOW_TRACKING_TOKEN"


def test_a_refused_client_call_names_the_credentials_in_use():
    from mlflow.exceptions import MlflowException

    def refused():
        raise MlflowException("API request to endpoint /api/2.0/mlflow/runs/get failed with error code 403 != 200")

    for tracking, named in ((trk.Tracking(uri="http://h", token="t"), "MLFLOW_TRACKING_TOKEN"),
                            (trk.Tracking(uri="http://h", username="u", password="p"), "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD")):
        with pytest.raises(InputError, match="refused read run") as err:
            trk.call(refused, "read run", tracking)
        assert err.value.input_name == named


def test_dagshub_401_fix_mentions_the_dagshub_token():
    t = trk.Tracking(uri="https://dagshub.com/a/b.mlflow", source=trk.SOURCE_ENV)
    err = trk.auth_error(t, "https://dagshub.com/a/b.mlflow answered HTTP 401 (no credentials given)")
    assert "DAGSHUB_USER_TOKEN" in err.line() and err.input_name == "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"


def test_unreachable_env_uri_names_mlflow_tracking_uri_and_hides_the_token():
    from mlops_actions.core.local_services import free_port

    tracking = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}/?token=hush-hush"})
    with pytest.raises(InputError) as err:
        trk.preflight(tracking)
    assert err.value.input_name == "MLFLOW_TRACKING_URI" and "after retries" in err.value.line()
    assert "hush-hush" not in err.value.line() and "token=***" in err.value.line()


# -- TLS against a real loopback HTTPS server ---------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    root = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return root


@pytest.fixture
def https_server(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    with serve(ctx) as srv:
        yield srv


def test_tls_is_verified_by_default_and_the_error_names_the_cert_variable(https_server):
    tracking = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": https_server.url})
    with pytest.raises(InputError) as err:
        trk.preflight(tracking)
    assert err.value.input_name == "MLFLOW_TRACKING_SERVER_CERT_PATH" and "certificate verification failed" in err.value.line()


def test_server_cert_path_is_the_ca_bundle(https_server, pki):
    tracking = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": https_server.url, "MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem"),
                                        "MLFLOW_TRACKING_TOKEN": "tok"})
    trk.preflight(tracking)
    assert https_server.seen[-1]["authorization"] == "Bearer tok"


def test_insecure_tls_skips_verification(https_server, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    tracking = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": https_server.url, "MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert "::warning::MLFLOW_TRACKING_INSECURE_TLS=true" in capsys.readouterr().out
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning, as with the mlflow client
        trk.preflight(tracking)
    assert len(https_server.seen) == 1


def test_a_wrong_ca_bundle_is_named(https_server, tmp_path):
    other = tmp_path / "other.pem"
    other.write_text(ssl.get_server_certificate(("127.0.0.1", https_server.server_address[1])))  # the leaf, not its CA
    tracking = trk.resolve("", "", env={"MLFLOW_TRACKING_URI": https_server.url, "MLFLOW_TRACKING_SERVER_CERT_PATH": str(other)})
    with pytest.raises(InputError) as err:
        trk.preflight(tracking)
    assert err.value.input_name == "MLFLOW_TRACKING_SERVER_CERT_PATH" and str(other) in err.value.line()


# -- activate -----------------------------------------------------------------------------------

EXPORTED = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
            "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH")


@pytest.fixture
def clean_env(monkeypatch):
    import mlflow

    for name in EXPORTED:
        monkeypatch.setenv(name, "placeholder")  # recorded, so monkeypatch restores (removes) what activate sets
        monkeypatch.delenv(name)
    yield monkeypatch
    mlflow.set_tracking_uri("")


def test_activate_exports_token_and_tls_for_mlflow_and_child_processes(clean_env, pki):
    import os

    import mlflow

    env = {"MLFLOW_TRACKING_URI": "https://127.0.0.1:1", "MLFLOW_TRACKING_TOKEN": "tok", "MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem")}
    trk.activate(trk.resolve("", "", env=env))
    assert {k: os.environ.get(k) for k in EXPORTED} == {
        "MLFLOW_TRACKING_URI": "https://127.0.0.1:1", "MLFLOW_TRACKING_USERNAME": None, "MLFLOW_TRACKING_PASSWORD": None,
        "MLFLOW_TRACKING_TOKEN": "tok", "MLFLOW_TRACKING_INSECURE_TLS": None,
        "MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem"), "MLFLOW_TRACKING_CLIENT_CERT_PATH": None,
    }
    assert mlflow.get_tracking_uri() == "https://127.0.0.1:1"


def test_activate_exports_a_dagshub_token_as_mlflow_credentials_and_drops_blank_tls_vars(clean_env):
    import os

    from mlflow.utils.credentials import get_default_host_creds

    clean_env.setenv("MLFLOW_TRACKING_INSECURE_TLS", "")  # `${{ vars.UNSET }}`: mlflow would raise on it
    clean_env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", " ")  # ... and skip TLS checks on this one
    trk.activate(trk.resolve("", "alice/rice", env={"DAGSHUB_USER_TOKEN": "dh", "MLFLOW_TRACKING_INSECURE_TLS": ""}))
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == os.environ["MLFLOW_TRACKING_PASSWORD"] == "dh"
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in os.environ and "MLFLOW_TRACKING_SERVER_CERT_PATH" not in os.environ
    creds = get_default_host_creds(os.environ["MLFLOW_TRACKING_URI"])
    assert (creds.username, creds.password, creds.verify) == ("dh", "dh", True)


def test_activate_insecure_is_normalised_for_mlflow(clean_env):
    import os

    from mlflow.utils.credentials import get_default_host_creds

    trk.activate(trk.resolve("", "", env={"MLFLOW_TRACKING_URI": "https://127.0.0.1:1", "MLFLOW_TRACKING_INSECURE_TLS": "1"}))
    assert os.environ["MLFLOW_TRACKING_INSECURE_TLS"] == "true" and get_default_host_creds("https://127.0.0.1:1").verify is False


@pytest.mark.parametrize(
    "text, auth",
    [
        ("API request to endpoint /api/2.0/mlflow/runs/get failed with error code 401 != 200. Response body: 'You are not authenticated'", True),
        ("API request to endpoint /api/2.0/mlflow/runs/create failed with error code 403 != 200.", True),
        ("403 Client Error: Forbidden for url: http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/a.png", True),
        ("RESOURCE_DOES_NOT_EXIST: PERMISSION_DENIED is not this", True),
        # the digits of a port or a path are not a status: a redirect to 127.0.0.1:44031 is not "403"
        ("Invalid redirect to http://127.0.0.1:44031/api/2.0/mlflow-artifacts/artifacts/model/401.png", False),
        ("The following failures occurred while downloading one or more artifacts from http://127.0.0.1:40317", False),
    ],
)
def test_an_auth_refusal_is_told_by_the_status_not_by_digits_anywhere(text, auth):
    from mlflow.exceptions import MlflowException

    assert trk._refused_auth(MlflowException(text), text) is auth


def test_an_auth_error_code_alone_is_a_refusal():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    exc = MlflowException("denied", error_code=PERMISSION_DENIED)
    assert exc.error_code == "PERMISSION_DENIED"
    assert trk._refused_auth(exc, str(exc)) is True
