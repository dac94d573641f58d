"""A private certificate authority for the local broker's TLS listener (``openssl`` CLI).

The launcher makes, once per state folder: a CA (``<state>/secrets/ca/ca.key``, 0600, never
given to the broker; ``ca.crt``), and a server key and certificate for ``127.0.0.1`` and
``localhost`` signed by it, copied with the CA certificate into the broker's folder
(``<state>/mosquitto/tls/``). Clients verify the broker with ``ca.crt``
(``NZC_MQTT_CA_FILE``; ``mosquitto_pub --cafile``). EC P-256 keys, SHA-256 signatures; the
CA is valid 10 years, the server certificate 825 days (the limit clients such as Apple's
accept) and is renewed when fewer than 30 days remain or the CA changed.

For loopback only: deployments use certificates of their own PKI (``docker-compose.yml``
mounts them; see the README's deployment section).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nzc.services import ServiceError, run

OPENSSL = "openssl"
CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE_S = 30 * 24 * 3600
SERVER_NAMES = ("127.0.0.1", "localhost")


def _openssl(args: list[str], what: str) -> None:
    run([OPENSSL, *args], what=f"tls: {what}", timeout_s=60.0)


def _valid_for(cert: Path, seconds: int) -> bool:
    """Whether ``cert`` exists and stays valid for at least ``seconds`` more."""
    if not cert.exists():
        return False
    proc = subprocess.run([OPENSSL, "x509", "-checkend", str(seconds), "-noout", "-in",
                           str(cert)], capture_output=True, check=False)
    return proc.returncode == 0


def _signed_by(cert: Path, ca: Path) -> bool:
    proc = subprocess.run([OPENSSL, "verify", "-CAfile", str(ca), str(cert)],
                          capture_output=True, check=False)
    return proc.returncode == 0


def ensure_ca(ca_dir: Path) -> tuple[Path, Path]:
    """The CA's (key, certificate) in ``ca_dir``, created if missing (key 0600)."""
    key, crt = ca_dir / "ca.key", ca_dir / "ca.crt"
    if key.exists() and _valid_for(crt, RENEW_BEFORE_S):
        return key, crt
    ca_dir.mkdir(parents=True, exist_ok=True)
    for folder in (ca_dir.parent, ca_dir):  # <state>/secrets and its ca/: owner only
        os.chmod(folder, 0o700)
    _openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
             "CA key")
    os.chmod(key, 0o600)
    _openssl(["req", "-x509", "-new", "-key", str(key), "-sha256", "-days", str(CA_DAYS),
              "-subj", "/O=nzc-monitor local/CN=nzc-monitor local CA", "-out", str(crt),
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], "CA certificate")
    return key, crt


def ensure_server_cert(ca_dir: Path, out_dir: Path,
                       names: tuple[str, ...] = SERVER_NAMES) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) in ``out_dir`` for ``names`` (IP
    addresses or DNS names; default the loopback ones), issued by the CA in ``ca_dir``;
    reused while valid and signed by that CA."""
    ca_key, ca_crt = ensure_ca(ca_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    crt, key, ca_copy = out_dir / "server.crt", out_dir / "server.key", out_dir / "ca.crt"
    if not (key.exists() and _valid_for(crt, RENEW_BEFORE_S) and _signed_by(crt, ca_crt)):
        csr = out_dir / "server.csr"
        ext = out_dir / "server.ext"
        _openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
                 "server key")
        os.chmod(key, 0o600)
        _openssl(["req", "-new", "-key", str(key), "-subj", f"/O=nzc-monitor local/CN={names[0]}",
                  "-out", str(csr)], "server request")
        san = ",".join(f"IP:{n}" if n[0].isdigit() else f"DNS:{n}" for n in names)
        ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n")
        _openssl(["x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                  "-CAcreateserial", "-CAserial", str(ca_dir / "ca.srl"), "-sha256",
                  "-days", str(SERVER_DAYS), "-extfile", str(ext), "-out", str(crt)],
                 "server certificate")
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    ca_copy.write_bytes(ca_crt.read_bytes())
    if not _signed_by(crt, ca_crt):
        raise ServiceError(f"tls: {crt} does not verify against {ca_crt}")
    return ca_copy, crt, key


def main(argv: list[str] | None = None) -> int:
    """``python -m nzc.services.tls --ca-dir DIR --out DIR --names mosquitto,localhost``: a
    private CA and a server certificate for a test deployment (docker-compose)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m nzc.services.tls", description=main.__doc__)
    p.add_argument("--ca-dir", type=Path, required=True, help="CA key and certificate (0700)")
    p.add_argument("--out", type=Path, required=True, help="ca.crt, server.crt, server.key")
    p.add_argument("--names", default=",".join(SERVER_NAMES),
                   help="comma-separated host names / IP addresses of the broker")
    args = p.parse_args(argv)
    ca, crt, key = ensure_server_cert(args.ca_dir, args.out,
                                      tuple(n.strip() for n in args.names.split(",") if n))
    print(f"CA {ca}\ncertificate {crt}\nkey {key} (mode 0600)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
