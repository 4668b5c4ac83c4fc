"""The KBS protocol (RCAR 0.4.0, Confidential Containers) seen from an independent client.

Everything the guest side does is written here from the protocol itself (trustee's
kbs_attestation_protocol.md, kbs-types, guest-components' kbs_protocol and sample attester), with
nothing but `cryptography` and `requests`, and shares no code with the server:

- RFC 8785 (JCS) canonicalization of the runtime data the evidence is bound to;
- the `sample` development TEE's evidence as guest-components' sample attester produces it
  (`{"svn", "report_data": base64(binding digest, zero-padded to 64 bytes)}`);
- JWE decryption of the resource answer (flattened JSON, A256GCM with the ASCII of the protected
  header as AAD) for both tee-pubkey kinds: ECDH-ES+A256KW on P-256 (Concat KDF SHA-256, AES key
  unwrap) and RSA-OAEP-256.

The server is set up only through the admin CLI, exactly as the issue's Contract states
(`enclava kbs resource set`, `enclava kbs policy set`, `enclava policy set --type sample`), with the
usual ENCLAVA_URL / ENCLAVA_CA_CERT / ENCLAVA_TOKEN_FILE settings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from conftest import READY_TIMEOUT_S, _binary, _pump, _stderr_tail

PROTOCOL_VERSION = "0.4.0"
ERROR_TYPE_PREFIX = "https://github.com/confidential-containers/kbs/errors/"
SESSION_COOKIE = "kbs-session-id"

# The appraisal policy that admits the development TEE (in the usual Enclava form): every default
# policy refuses `sample`, so this explicit one is what lets the handshake reach a token.
APPRAISAL_POLICY = """package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "tee", "path": "claims.tee", "expected": "sample", "found": input.claims.tee} if input.claims.tee != "sample"
"""

# The resource policy (KBS shape: input = the token's claims, data = {plugin, resource-path,
# query}, rule data.policy.allow): only default/key/1 is released; anything else is refused with a
# reason naming the rule.
RESOURCE_POLICY = """package policy

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "only_key_1", "path": "resource-path", "expected": "default/key/1", "found": data["resource-path"]} if trim_left(data["resource-path"], "/") != "default/key/1"
"""

SECRET_1 = b"the image decryption key \x00\x01\xfe\xff " + bytes(range(256))
SECRET_2 = b"a registry credential that the policy keeps back"


# --- encodings ------------------------------------------------------------------------------------


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jcs_string(s: str) -> str:
    # RFC 8785 section 3.2.2.2: ECMAScript JSON.stringify escaping: the two-character escapes for
    # \b \t \n \f \r, \u00xx (lowercase hex) for the other control characters, `"` and `\`
    # escaped, everything else (including non-ASCII) literal.
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
    out = ['"']
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value) -> bytes:
    """RFC 8785 canonical JSON (UTF-8). Numbers: integers only (the runtime data has none)."""

    def enc(v) -> str:
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            if abs(v) > 2**53:
                raise ValueError("integer outside the IEEE 754 exact range")
            return str(v)
        if isinstance(v, str):
            return _jcs_string(v)
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, dict):
            # Section 3.2.3: members sorted by their names as arrays of UTF-16 code units.
            keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
            return "{" + ",".join(_jcs_string(k) + ":" + enc(v[k]) for k in keys) + "}"
        raise TypeError(f"not representable in the runtime data: {type(v).__name__}")

    return enc(value).encode("utf-8")


def test_jcs_matches_rfc8785():
    # RFC 8785 section 3.2.3's sorting example (UTF-16 order differs from code-point order for
    # the surrogate pair) and the escaping rules of section 3.2.2.2.
    sorted_example = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                      "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    out = jcs(sorted_example).decode("utf-8")
    order = [k for k in json.loads(out)]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert jcs({"b": "\u000f\n\"\\/", "a": [True, None, 1]}) == b'{"a":[true,null,1],"b":"\\u000f\\n\\"\\\\/"}'


# --- the guest's key pair and JWE decryption ------------------------------------------------------


def concat_kdf_sha256(z: bytes, alg: str, key_bits: int, apu: bytes = b"", apv: bytes = b"") -> bytes:
    """NIST SP 800-56A Concat KDF with SHA-256 as RFC 7518 section 4.6.2 uses it for ECDH-ES."""

    def lp(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    other = lp(alg.encode("ascii")) + lp(apu) + lp(apv) + key_bits.to_bytes(4, "big")
    out = b""
    counter = 1
    while len(out) * 8 < key_bits:
        out += hashlib.sha256(counter.to_bytes(4, "big") + z + other).digest()
        counter += 1
    return out[: key_bits // 8]


class TeeKey:
    """The ephemeral key pair a guest puts in its runtime data as `tee-pubkey`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "EC":
            self._key = ec.generate_private_key(ec.SECP256R1())
            n = self._key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW",
                        "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}
        elif kind == "RSA":
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            n = self._key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "alg": "RSA-OAEP-256",
                        "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
                        "e": b64u(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}
        else:
            raise ValueError(kind)

    def decrypt(self, jwe: dict) -> bytes:
        """Decrypt a flattened JWE JSON answer; every header field is checked, not assumed."""
        assert set(jwe) >= {"protected", "encrypted_key", "iv", "ciphertext", "tag"}, jwe
        assert "aad" not in jwe, "RCAR answers carry no JWE aad member"
        header = json.loads(b64u_decode(jwe["protected"]))
        assert header.get("enc") == "A256GCM", header
        encrypted_key = b64u_decode(jwe["encrypted_key"])
        if self.kind == "EC":
            assert header.get("alg") == "ECDH-ES+A256KW", header
            epk = header["epk"]
            assert epk.get("kty") == "EC" and epk.get("crv") == "P-256", epk
            peer = ec.EllipticCurvePublicNumbers(
                int.from_bytes(b64u_decode(epk["x"]), "big"), int.from_bytes(b64u_decode(epk["y"]), "big"), ec.SECP256R1()
            ).public_key()
            z = self._key.exchange(ec.ECDH(), peer)
            kek = concat_kdf_sha256(z, "ECDH-ES+A256KW", 256, b64u_decode(header.get("apu", "")),
                                    b64u_decode(header.get("apv", "")))
            cek = aes_key_unwrap(kek, encrypted_key)
        else:
            assert header.get("alg") == "RSA-OAEP-256", header
            cek = self._key.decrypt(
                encrypted_key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
            )
        assert len(cek) == 32, len(cek)
        iv = b64u_decode(jwe["iv"])
        assert len(iv) == 12, len(iv)
        return AESGCM(cek).decrypt(
            iv, b64u_decode(jwe["ciphertext"]) + b64u_decode(jwe["tag"]), jwe["protected"].encode("ascii")
        )


def test_concat_kdf_matches_rfc7518_appendix_c():
    # RFC 7518 appendix C (ECDH-ES, A128GCM, apu "Alice", apv "Bob"): the derived key.
    z = bytes([158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218,
               128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196])
    assert b64u(concat_kdf_sha256(z, "A128GCM", 128, b"Alice", b"Bob")) == "VqqN6vgjbSBcIijNcacQGg"


# --- the RCAR client --------------------------------------------------------------------------------


HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def sample_evidence(report_data: bytes) -> dict:
    """guest-components' sample attester: svn and the report data, standard base64."""
    return {"svn": "1", "report_data": base64.b64encode(report_data).decode("ascii")}


def binding_digest(jwk: dict, nonce: str, additional_evidence: str = "", alg: str = "sha384") -> bytes:
    runtime = {"tee-pubkey": jwk, "nonce": nonce, "additional-evidence": additional_evidence}
    return HASHES[alg](jcs(runtime)).digest()


def report_data_field(digest: bytes, size: int = 64) -> bytes:
    """The binding digest zero-padded (or truncated) to the TEE's report-data field."""
    return digest[:size].ljust(size, b"\0")


class RcarClient:
    def __init__(self, url: str, ca: str, tee: str = "sample") -> None:
        self.url = url
        self.tee = tee
        self.ca = ca
        # Cookies persist in the session; `verify` goes on every request (a Session's own
        # `verify` loses against REQUESTS_CA_BUNDLE from the environment).
        self.http = requests.Session()
        self.hash_alg = "sha384"

    def auth(self, version: str = PROTOCOL_VERSION, hash_algs=("sha384", "sha256", "sha512")) -> requests.Response:
        return self.http.post(
            f"{self.url}/kbs/v0/auth",
            json={"version": version, "tee": self.tee, "extra-params": {"supported-hash-algorithms": list(hash_algs)}},
            verify=self.ca,
            timeout=30,
        )

    def challenge(self) -> str:
        r = self.auth()
        assert r.status_code == 200, r.text
        assert SESSION_COOKIE in self.http.cookies, r.headers.get("set-cookie")
        body = r.json()
        nonce = body["nonce"]
        assert len(base64.b64decode(nonce, validate=True)) == 32, nonce
        extra = body.get("extra-params")
        # A server that picks the hash says which; the protocol default is SHA-384.
        if isinstance(extra, dict) and extra.get("selected-hash-algorithm"):
            self.hash_alg = extra["selected-hash-algorithm"]
        return nonce

    def attest(self, key: TeeKey, nonce: str, report_data: bytes | None = None) -> requests.Response:
        if report_data is None:
            report_data = report_data_field(binding_digest(key.jwk, nonce, "", self.hash_alg))
        body = {
            "runtime-data": {"nonce": nonce, "tee-pubkey": key.jwk},
            "tee-evidence": {"primary_evidence": sample_evidence(report_data), "additional_evidence": ""},
        }
        return self.http.post(f"{self.url}/kbs/v0/attest", json=body, verify=self.ca, timeout=30)

    def handshake(self, key: TeeKey) -> str:
        nonce = self.challenge()
        r = self.attest(key, nonce)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def resource(self, path: str, bearer: str | None = None) -> requests.Response:
        if bearer is None:
            return self.http.get(f"{self.url}/kbs/v0/resource/{path}", verify=self.ca, timeout=30)
        # A fresh connection with no cookie: the token alone must be enough.
        return requests.get(
            f"{self.url}/kbs/v0/resource/{path}", headers={"Authorization": f"Bearer {bearer}"},
            verify=self.ca, timeout=30,
        )


def assert_kbs_error(r: requests.Response, kind: str, status: int | None = None, *, mentions: str | None = None) -> dict:
    """The documented error shape: {"type": ".../errors/<Kind>", "detail": "..."}."""
    assert r.status_code >= 400, (r.status_code, r.text)
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body.get("type") == ERROR_TYPE_PREFIX + kind, body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if mentions is not None:
        assert mentions in body["detail"], body
    return body


# --- server setup through the CLI -----------------------------------------------------------------


def _cli(url: str, ca: str, token_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_binary()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ENCLAVA_URL": url, "ENCLAVA_CA_CERT": ca, "ENCLAVA_TOKEN_FILE": str(token_file), "PATH": "/usr/bin:/bin"},
    )


def _configure(url: str, ca: str, token_file: Path, tmp: Path) -> None:
    files = {"key1.bin": SECRET_1, "key2.bin": SECRET_2, "P.rego": RESOURCE_POLICY.encode(),
             "A.rego": APPRAISAL_POLICY.encode()}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    steps = [
        ("kbs", "resource", "set", "default/key/1", "--file", str(tmp / "key1.bin")),
        ("kbs", "resource", "set", "default/key/2", "--file", str(tmp / "key2.bin")),
        ("kbs", "policy", "set", "--file", str(tmp / "P.rego")),
        ("policy", "set", "--type", "sample", "--file", str(tmp / "A.rego")),
    ]
    for step in steps:
        r = _cli(url, ca, token_file, *step)
        assert r.returncode == 0, f"`enclava {' '.join(step)}` failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="module")
def kbs(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kbs")
    token_file = server.data_dir / "admin.token"
    # Before the appraisal policy admits it, the development TEE is refused like the simulator.
    c = RcarClient(server.url, server.ca)
    nonce = c.challenge()
    assert_kbs_error(c.attest(TeeKey("EC"), nonce), "AttestationFailed", 401)
    _configure(server.url, server.ca, token_file, tmp)
    r = _cli(server.url, server.ca, token_file, "kbs", "resource", "get", "default/key/1", "--file", str(tmp / "out.bin"))
    assert r.returncode == 0, r.stderr
    assert (tmp / "out.bin").read_bytes() == SECRET_1
    return server


# --- the flow --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_full_flow_decrypts_exactly_the_resource(kbs, kind):
    c = RcarClient(kbs.url, kbs.ca)
    key = TeeKey(kind)
    token = c.handshake(key)
    # The token is a JWT (three base64url parts) carrying EAR claims.
    header, payload, _sig = token.split(".")
    claims = json.loads(b64u_decode(payload))
    assert claims["exp"] > claims["iat"], claims
    # Enclava's token embeds the EAR appraisal (x-enclava-ear) and the KBS facts (x-enclava-kbs),
    # among them the very key the answer is encrypted to.
    assert claims["x-enclava-ear"]["submods"], claims
    assert claims["x-enclava-kbs"]["tee-pubkey"] == key.jwk, claims
    r = c.resource("default/key/1")
    assert r.status_code == 200, r.text
    assert key.decrypt(r.json()) == SECRET_1


def test_bearer_token_instead_of_cookie(kbs):
    c = RcarClient(kbs.url, kbs.ca)
    key = TeeKey("EC")
    token = c.handshake(key)
    r = c.resource("default/key/1", bearer=token)
    assert r.status_code == 200, r.text
    assert key.decrypt(r.json()) == SECRET_1
    # Neither cookie nor token: refused, not served.
    r = requests.get(f"{kbs.url}/kbs/v0/resource/default/key/1", verify=kbs.ca, timeout=30)
    assert_kbs_error(r, "TokenNotFound", 401)
    # A token whose signature does not verify: refused.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_kbs_error(c.resource("default/key/1", bearer=forged), "TokenVerificationFailed", 401)


def test_second_resource_refused_by_policy_with_reason(kbs):
    c = RcarClient(kbs.url, kbs.ca)
    c.handshake(TeeKey("EC"))
    r = c.resource("default/key/2")
    body = assert_kbs_error(r, "PolicyDeny", 401, mentions="only_key_1")
    assert SECRET_2.decode() not in json.dumps(body)
    # The same session still gets what the policy allows.
    assert c.resource("default/key/1").status_code == 200


# A policy written the way trustee's are: the EAR appraisal read at input.submods.cpu0.
TRUSTEE_SHAPED_POLICY = """package policy

import rego.v1

default allow = false

allow if {
    startswith(input["submods"]["cpu0"]["ear.appraisal-policy-id"], "sample@")
    input["eat_profile"] == "tag:github.com,2023:veraison/ear"
    data["resource-path"] == "default/trustee/1"
}
"""


def test_trustee_shaped_policy_on_a_prefix(kbs, tmp_path):
    token_file = kbs.data_dir / "admin.token"
    (tmp_path / "t.bin").write_bytes(SECRET_2)
    (tmp_path / "t.rego").write_text(TRUSTEE_SHAPED_POLICY)
    for step in (("kbs", "resource", "set", "default/trustee/1", "--file", str(tmp_path / "t.bin")),
                 ("kbs", "policy", "set", "--file", str(tmp_path / "t.rego"), "--prefix", "default/trustee")):
        r = _cli(kbs.url, kbs.ca, token_file, *step)
        assert r.returncode == 0, r.stderr
    c = RcarClient(kbs.url, kbs.ca)
    key = TeeKey("EC")
    c.handshake(key)
    r = c.resource("default/trustee/1")
    assert r.status_code == 200, r.text
    assert key.decrypt(r.json()) == SECRET_2
    # The longest prefix decides: the general policy still governs default/key/*.
    assert key.decrypt(c.resource("default/key/1").json()) == SECRET_1


def test_replayed_nonce_refused(kbs):
    c = RcarClient(kbs.url, kbs.ca)
    key = TeeKey("EC")
    nonce = c.challenge()
    assert c.attest(key, nonce).status_code == 200
    # The same evidence for the same (spent) nonce again: the nonce is single use.
    assert_kbs_error(c.attest(key, nonce), "InvalidNonce", 401)
    # And a nonce that was never issued to this session.
    c2 = RcarClient(kbs.url, kbs.ca)
    c2.challenge()
    forged = base64.b64encode(os.urandom(32)).decode()
    # (its evidence correctly bound to that nonce: only the session's nonce check can refuse it)
    assert_kbs_error(c2.attest(key, forged), "InvalidNonce", 401)


def test_wrong_binding_refused(kbs):
    c = RcarClient(kbs.url, kbs.ca)
    key, other = TeeKey("EC"), TeeKey("EC")
    nonce = c.challenge()
    # Evidence bound to another key than the one in the runtime data (a key substitution).
    r = c.attest(key, nonce, report_data=report_data_field(binding_digest(other.jwk, nonce)))
    assert_kbs_error(r, "BindingMismatch", 401, mentions="binding")


def test_wrong_version_refused(kbs):
    c = RcarClient(kbs.url, kbs.ca)
    for version in ("0.1.1", "0.3.0", "0.4.1", ""):
        r = c.auth(version=version)
        body = assert_kbs_error(r, "ProtocolVersion", 400)
        assert PROTOCOL_VERSION in body["detail"], body


def test_attest_without_session_refused(kbs):
    r = requests.post(f"{kbs.url}/kbs/v0/attest", json={}, verify=kbs.ca, timeout=30)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["type"].startswith(ERROR_TYPE_PREFIX), r.text


def test_unknown_resource_is_404(kbs):
    c = RcarClient(kbs.url, kbs.ca)
    c.handshake(TeeKey("EC"))
    # The resource policy refuses this path too: a server that evaluates the policy before the
    # lookup (hiding which paths exist) answers PolicyDeny, one that looks up first
    # ResourceNotFound; both are refusals of the documented shape, never the bytes of another.
    r = c.resource("default/key/no-such-tag")
    assert r.json()["type"] in (ERROR_TYPE_PREFIX + "ResourceNotFound", ERROR_TYPE_PREFIX + "PolicyDeny"), r.text


# --- an expired token, on a server issuing short-lived tokens ---------------------------------------


class DevServer:
    """One `enclava server --dev` process on DATA_DIR (stopped by `stop`)."""

    def __init__(self, data_dir: Path, env_extra: dict[str, str], log: Path) -> None:
        self.data_dir = data_dir
        self.ca = str(data_dir / "ca.pem")
        self._stderr_path = log
        self._stderr = open(log, "w")
        self.proc = subprocess.Popen(
            [str(_binary()), "server", "--dev", "--data-dir", str(data_dir), "--addr", "127.0.0.1:0"],
            env=dict(os.environ, **env_extra), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True,
        )
        lines: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        self.url = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while self.url is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("no `ready https://...` line")
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    continue
                if line is None:
                    raise RuntimeError(f"server exited (code {self.proc.wait(timeout=5)})")
                parts = line.split()
                if len(parts) == 2 and parts[0] == "ready" and parts[1].startswith("https://"):
                    self.url = parts[1].rstrip("/")
        except BaseException as e:  # noqa: BLE001 - reported with the server's own words
            self.stop()
            pytest.fail(f"enclava server failed to start: {e}\n{_stderr_tail(self._stderr_path)}", pytrace=False)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stderr.close()


@pytest.fixture(scope="module")
def short_lived():
    """A dev server whose attestation tokens live one second, set up as the Contract says."""
    with tempfile.TemporaryDirectory(prefix="enclava-pytest-kbs-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        srv = DevServer(root / "data", {"ENCLAVA_ATTESTATION_TOKEN_LIFETIME_SECS": "1"}, root / "server.stderr")
        try:
            _configure(srv.url, srv.ca, srv.data_dir / "admin.token", root)
            yield srv.url, srv.ca
        finally:
            srv.stop()


def test_expired_token_refused(short_lived):
    url, ca = short_lived
    c = RcarClient(url, ca)
    key = TeeKey("EC")
    token = c.handshake(key)
    claims = json.loads(b64u_decode(token.split(".")[1]))
    assert claims["exp"] - claims["iat"] <= 2, claims
    # Before expiry both ways work ...
    assert c.resource("default/key/1", bearer=token).status_code == 200
    session_id = c.http.cookies.get(SESSION_COOKIE)
    assert session_id
    # ... after it (KBS tokens get no clock-skew leeway: the protocol's tokens are short-lived),
    # neither does: the token is expired, and so is the session it attested.
    time.sleep(max(0.0, claims["exp"] + 1.5 - time.time()))
    assert_kbs_error(c.resource("default/key/1", bearer=token), "TokenExpired", 401)
    # The cookie's own Expires makes a client drop it (then there is nothing to show) ...
    assert_kbs_error(c.resource("default/key/1"), "TokenNotFound", 401)
    # ... and a client that keeps sending it anyway is refused by the server's session expiry.
    r = requests.get(f"{url}/kbs/v0/resource/default/key/1", headers={"Cookie": f"{SESSION_COOKIE}={session_id}"},
                     verify=ca, timeout=30)
    assert_kbs_error(r, "ExpiredCookie", 401)


# --- a handshake across replicas (PostgreSQL) -------------------------------------------------------


def _postgres_url() -> str:
    url = os.environ.get("ENCLAVA_TEST_POSTGRES_URL", "")
    if not url:
        msg = "ENCLAVA_TEST_POSTGRES_URL is not set: run through scripts/postgres-test.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return url


def _fresh_database(base: str, name: str) -> str:
    """Create database NAME in the test cluster (psql) and return the cluster URL pointing at it."""
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        r = subprocess.run(["psql", base, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"psql {sql!r}: {r.stderr}"
    scheme_end = base.index("://") + 3
    slash = base.find("/", scheme_end)
    head = base if slash < 0 else base[:slash]
    query = "" if slash < 0 or "?" not in base[slash:] else base[base.index("?", slash):]
    return f"{head}/{name}{query}"


def test_handshake_started_on_one_replica_finished_on_another(tmp_path):
    db = _fresh_database(_postgres_url(), f"kbs_pytest_{os.getpid()}")
    data = tmp_path / "data"
    data.mkdir()
    # Two replicas: one database, one data directory (the --dev unseal key and TLS material), one
    # public URL (one token issuer).
    env = {"ENCLAVA_STORE": db, "ENCLAVA_PUBLIC_URL": "https://replicas.enclava.test"}
    a = DevServer(data, env, tmp_path / "a.stderr")
    try:
        b = DevServer(data, env, tmp_path / "b.stderr")
        try:
            _configure(a.url, a.ca, data / "admin.token", tmp_path)
            # Policies and resources written through A reach B through the shared database
            # (B's appraisal-policy cache revalidates within a second).
            time.sleep(1.5)
            c = RcarClient(a.url, a.ca)
            key = TeeKey("EC")
            nonce = c.challenge()  # the session is created on A ...
            c.url = b.url  # ... (cookies are per host, not per port: the same cookie goes to B)
            r = c.attest(key, nonce)  # ... and attested on B
            assert r.status_code == 200, r.text
            c.url = a.url  # back on A with the now attested session
            r = c.resource("default/key/1")
            assert r.status_code == 200, r.text
            assert key.decrypt(r.json()) == SECRET_1
            # The nonce is spent for every replica.
            c.url = b.url
            assert_kbs_error(c.attest(key, nonce), "InvalidNonce", 401)
        finally:
            b.stop()
    finally:
        a.stop()
