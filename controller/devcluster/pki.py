"""Certificates, keys and static tokens for a local control plane.

Generated once per data directory and reused on every start, so kubeconfigs written
earlier (and tokens handed to tests) stay valid across restarts. The CA signs the
apiserver's serving certificate (so clients verify it instead of skipping TLS checks)
and the node agent's kubelet certificate. Identities are static tokens: simpler than
client certificates, and a token file is how RBAC tests get a user with no rights.
The one client certificate is the apiserver's own towards a real kubelet, which accepts
no anonymous requests and no static tokens.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=3650)

# Users with no groups beyond system:authenticated, for RBAC tests: bind a Role to one
# and use its token; they can do nothing until bound.
TEST_USERS: tuple[str, ...] = tuple(f"test-user-{i}" for i in range(5))

REAL_NODE = "kubedag-real-0"
"""The Node a real kubelet registers as (see devcluster.realnode)."""
REAL_NODE_IP = "198.51.100.1"
"""The real node's address: a documentation-range /32 on `lo`, since a kubelet refuses
a loopback node IP; reachable from this machine only."""
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]


# The node agent serves several nodes from one process, which the Node authorizer's
# one-identity-per-node rule cannot express, so it runs with admin rights.
IDENTITIES: tuple[Identity, ...] = (
    Identity("kubedag-admin", ("system:masters",)),
    Identity("system:kube-controller-manager", ()),
    Identity("system:kube-scheduler", ()),
    Identity("kubedag-node-agent", ("system:masters",)),
    # A real kubelet is one node, so it gets the Node authorizer's least privilege.
    Identity(f"system:node:{REAL_NODE}", ("system:nodes",)),
    *(Identity(user, ()) for user in TEST_USERS),
)


@dataclass(frozen=True)
class Pki:
    """Paths of the generated material inside a cluster's pki directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def kubelet_cert(self) -> Path:
        return self.root / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.root / "kubelet.key"

    @property
    def real_kubelet_cert(self) -> Path:
        return self.root / "kubelet-real.crt"

    @property
    def real_kubelet_key(self) -> Path:
        return self.root / "kubelet-real.key"

    @property
    def kubelet_client_cert(self) -> Path:
        """The apiserver's client certificate towards kubelets (logs, exec)."""
        return self.root / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.root / "apiserver-kubelet-client.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    @property
    def token_file(self) -> Path:
        return self.root / "tokens.csv"

    def tokens(self) -> dict[str, str]:
        """user -> token, read back from the token file."""
        result: dict[str, str] = {}
        for line in self.token_file.read_text().splitlines():
            token, user = line.split(",")[:2]
            result[user] = token
        return result


def ensure_pki(root: Path) -> Pki:
    """Create whatever is missing; never regenerate what exists."""
    pki = Pki(root)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    if not pki.ca_cert.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubedag-local-ca")])
        cert = (
            _builder(subject=name, issuer=name, public_key=key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        _write_key(pki.ca_key, key)
        pki.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not pki.apiserver_cert.exists():
        _issue(
            pki,
            cert_path=pki.apiserver_cert,
            key_path=pki.apiserver_key,
            common_name="kube-apiserver",
            dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ips=["127.0.0.1", "10.0.0.1"],
        )
    if not pki.kubelet_cert.exists():
        _issue(
            pki,
            cert_path=pki.kubelet_cert,
            key_path=pki.kubelet_key,
            common_name="kubedag-node-agent",
            dns=["localhost"],
            ips=["127.0.0.1"],
        )
    if not pki.real_kubelet_cert.exists():
        _issue(
            pki,
            cert_path=pki.real_kubelet_cert,
            key_path=pki.real_kubelet_key,
            common_name=f"system:node:{REAL_NODE}",
            dns=[REAL_NODE, "localhost"],
            ips=[REAL_NODE_IP, "127.0.0.1"],
        )
    if not pki.kubelet_client_cert.exists():
        _issue(
            pki,
            cert_path=pki.kubelet_client_cert,
            key_path=pki.kubelet_client_key,
            common_name=APISERVER_KUBELET_CLIENT,
            dns=[],
            ips=[],
            usage=x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
        )
    if not pki.sa_key.exists():
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(pki.sa_key, sa)
        pki.sa_pub.write_bytes(
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    _ensure_tokens(pki.token_file)
    return pki


def _ensure_tokens(path: Path) -> None:
    existing = path.read_text().splitlines() if path.exists() else []
    known = {line.split(",")[1] for line in existing if line}
    lines = list(existing)
    for uid, identity in enumerate(IDENTITIES):
        if identity.user in known:
            continue
        groups = ",".join(identity.groups)
        row = f"{secrets.token_hex(24)},{identity.user},uid-{uid}"
        lines.append(f'{row},"{groups}"' if groups else row)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def _builder(
    *, subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _issue(
    pki: Pki,
    *,
    cert_path: Path,
    key_path: Path,
    common_name: str,
    dns: list[str],
    ips: list[str],
    usage: x509.ObjectIdentifier = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
) -> None:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = _builder(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        issuer=ca_cert.subject,
        public_key=key.public_key(),
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(
        ca_key, hashes.SHA256()
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
