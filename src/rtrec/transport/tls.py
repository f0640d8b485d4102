"""TLS for rtrec's servers (``--tls``): ``wss://`` on loopback for clients that insist on it.

The official Node SDK dials ``wss://`` only, and browsers on an https page may only open
``wss://``, so ``rtrec record``, ``rtrec sim`` and ``rtrec playback`` can listen with TLS:

- ``--tls``: a certificate authority and a server certificate for ``localhost``,
  ``127.0.0.1`` and ``::1`` are generated on first use (``trustme``) and kept in a per-user
  folder (``$XDG_CONFIG_HOME/rtrec/tls``, else ``~/.config/rtrec/tls``; the folder 0700, the
  files 0600), so that one ``NODE_EXTRA_CA_CERTS`` or ``SSL_CERT_FILE`` setting keeps working
  across runs. The CA's key is not kept: nothing but this one server certificate is ever
  signed with it.
- ``--tls-cert FILE --tls-key FILE``: one's own certificate (PEM; the key may sit in the
  certificate file).

``tls_hint`` is the text the commands print beside the ``wss://`` URL.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs

from rtrec.schemas.errors import RtrecError

__all__ = ["TlsError", "TlsServer", "default_tls_dir", "load_tls", "tls_hint"]

#: The names the generated certificate is valid for: loopback only (servers bind it).
IDENTITIES: Final = ("localhost", "127.0.0.1", "::1")
CA_FILE: Final = "ca.pem"
SERVER_FILE: Final = "server.pem"  # the certificate chain, then its private key


class TlsError(RtrecError, ValueError):
    """A certificate or key cannot be used (the message names the file)."""


@attrs.frozen
class TlsServer:
    """A server-side TLS setup: the context to wrap streams in, and the CA to trust."""

    context: ssl.SSLContext = attrs.field(eq=False)
    #: the CA file a client must trust (None for one's own certificate: its issuer is
    #: presumably trusted already, or the user knows which file to give)
    ca_file: Path | None
    cert_file: Path


def default_tls_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user folder of the generated certificate."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "rtrec" / "tls"


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start (never world-readable, even for a moment), then renamed
    # over the final name so that a concurrent first use never reads half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _generate(folder: Path) -> None:
    import trustme  # imported here: only the first --tls run needs it

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    ca = trustme.CA(organization_name="rtrec local CA")
    leaf = ca.issue_cert(*IDENTITIES, organization_name="rtrec")
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    _write_private(folder / SERVER_FILE, chain + leaf.private_key_pem.bytes())
    # the CA last: its presence says the folder is complete
    _write_private(folder / CA_FILE, ca.cert_pem.bytes())


def _context(cert: Path, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        shown = f"{cert}" if key is None else f"{cert} and {key}"
        raise TlsError(f"cannot use the TLS certificate {shown}: {exc}") from None
    return context


def load_tls(
    cert: Path | None = None, key: Path | None = None, *, folder: Path | None = None
) -> TlsServer:
    """The TLS setup for a server: ``cert``/``key`` when given, else the generated one in
    ``folder`` (``default_tls_dir()``), generated now if it is missing.

    Raises:
        TlsError: a certificate or key cannot be read or used.
    """
    if cert is not None:
        return TlsServer(_context(cert, key), None, cert)
    if key is not None:
        raise TlsError("--tls-key needs --tls-cert")
    folder = folder if folder is not None else default_tls_dir()
    if not (folder / CA_FILE).exists() or not (folder / SERVER_FILE).exists():
        try:
            _generate(folder)
        except OSError as exc:
            raise TlsError(f"cannot write the TLS certificate to {folder}: {exc}") from None
    return TlsServer(_context(folder / SERVER_FILE, None), folder / CA_FILE, folder / SERVER_FILE)


def tls_hint(tls: TlsServer) -> str:
    """How to make a client trust the server, for the command line."""
    if tls.ca_file is None:
        return f"TLS with {tls.cert_file}"
    ca = tls.ca_file
    return (
        f"TLS CA file: {ca} (Node: NODE_EXTRA_CA_CERTS={ca}; Python: SSL_CERT_FILE={ca}; "
        "a browser: import it as an authority)"
    )
