"""The README's five-minute tour, from Python.

Creates an encryption key, encrypts and decrypts, rotates (the old ciphertext still
decrypts), creates a signing key, signs, verifies, fetches the public key, makes a data key,
lists the keys, reads the audit events of the first key and verifies the audit chain. Prints
each step; exits 1 at the first step that fails.

    python examples/tour.py [--endpoint URL] [--token TOKEN] [--ca-file PEM]
                            [--cert-file PEM --key-file PEM] [--prefix P] [--json]

The endpoint, token and TLS files default to KEYGATE_ENDPOINT, KEYGATE_TOKEN,
KEYGATE_CA_CERT, KEYGATE_CLIENT_CERT and KEYGATE_CLIENT_KEY, as for the keygate command.
`--prefix` goes in front of the key names, so the tour can run again on the same gateway.
`--json` prints one JSON object per step (with the call's request id) instead of text.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
from typing import Any

from keygate_client import Client, KeygateError, connect

CARD = b"4111 1111 1111 1111"
ARTIFACT = b"release artifact bytes"


class Tour:
    """Runs the steps, printing each as text or as a JSON line."""

    def __init__(self, kg: Client, as_json: bool) -> None:
        self.kg = kg
        self.as_json = as_json

    def say(self, step: str, text: str, request_id: str | None = None, **facts: Any) -> None:
        """Prints a step; its request id is the latest call's unless given."""
        if self.as_json:
            request_id = request_id or self.kg.last_request_id
            print(json.dumps({"step": step, "request_id": request_id, **facts}), flush=True)
        else:
            print(f"{step:<16} {text}", flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"tour: {what}")


def run(kg: Client, prefix: str, as_json: bool) -> None:
    tour = Tour(kg, as_json)
    card_key, signing_key = f"{prefix}payments/card-dek", f"{prefix}release/signing"

    key = kg.create_key(
        card_key, algorithm="aes-256-gcm", owner="alice", crypto_period=datetime.timedelta(days=365)
    )
    tour.say("create-key", f"{key.name} ({key.algorithm}, owner {key.owner}, id {key.id})", key=key.name, id=key.id)

    sealed = kg.encrypt(card_key, CARD)
    tour.say("encrypt", f"{len(CARD)} bytes -> {len(sealed.ciphertext)}-byte ciphertext under version {sealed.key_version}",
             key_version=sealed.key_version)
    opened = kg.decrypt(sealed.ciphertext)
    check(opened.plaintext == CARD, "decrypt gave back other bytes than were encrypted")
    tour.say("decrypt", f"round trip matched ({opened.key_name} version {opened.key_version})",
             matched=True, key_version=opened.key_version)

    rotated = kg.rotate_key(card_key)
    check(rotated.primary_version == 2, f"after a rotation the primary version is {rotated.primary_version}, not 2")
    tour.say("rotate-key", f"version {rotated.primary_version} is primary", primary_version=rotated.primary_version)
    opened = kg.decrypt(sealed.ciphertext)
    check(opened.plaintext == CARD and opened.key_version == 1, "the ciphertext from before the rotation no longer decrypts")
    tour.say("decrypt", f"the old ciphertext still decrypts (version {opened.key_version})",
             matched=True, key_version=opened.key_version)

    shown = kg.get_key(card_key)
    tour.say("show-key", f"{shown.name}: owner {shown.owner}, {shown.state}, {len(shown.versions)} versions, "
             f"rotation due {shown.rotation_due_at}", state=shown.state, versions=len(shown.versions))

    kg.create_key(signing_key, algorithm="ecdsa-p256", owner="alice", crypto_period=datetime.timedelta(days=730))
    tour.say("create-key", f"{signing_key} (ecdsa-p256)", key=signing_key)
    signed = kg.sign(signing_key, message=ARTIFACT)
    tour.say("sign", f"{len(signed.signature)}-byte {signed.algorithm} signature", algorithm=signed.algorithm)
    check(kg.verify(signing_key, signed.signature, message=ARTIFACT), "a fresh signature did not verify")
    tour.say("verify", "signature valid", valid=True)
    check(not kg.verify(signing_key, signed.signature, message=ARTIFACT + b"!"), "a signature verified for other bytes")
    tour.say("verify", "the same signature over other bytes is refused", valid=False)
    public = kg.public_key(signing_key)
    check(public.pem.startswith("-----BEGIN PUBLIC KEY-----"), "the public key is not a PEM public key")
    fingerprint = hashlib.sha256(public.der).hexdigest()[:16]
    tour.say("public-key", f"PEM public key, SHA-256 of its DER {fingerprint}…", sha256=fingerprint)

    data_key = kg.generate_data_key(card_key)
    generated = kg.last_request_id
    unsealed = kg.decrypt(data_key.ciphertext)
    check(unsealed.plaintext == data_key.plaintext, "the sealed data key does not decrypt to the data key")
    tour.say("data-key", f"{len(data_key.plaintext)}-byte data key; its sealed copy decrypts to it",
             request_id=generated, matched=True)

    names = [k.name for k in kg.list_keys()]
    check(card_key in names and signing_key in names, f"list-keys is missing the tour's keys: {names}")
    tour.say("list-keys", ", ".join(names), keys=names)

    events = list(kg.audit_query(key=card_key))
    actions = [e.action for e in events]
    check("Encrypt" in actions and "Decrypt" in actions, f"the audit log has no Encrypt/Decrypt for {card_key}: {actions}")
    tour.say("audit-query", f"{len(events)} events for {card_key}: {', '.join(sorted(set(actions)))}",
             events=len(events), actions=actions)

    verified = kg.audit_verify()
    check(verified.ok, f"the audit chain did not verify: {verified.reason}")
    tour.say("audit-verify", f"chain ok ({verified.events_checked} events checked, head {verified.head_sequence})",
             ok=True, events_checked=verified.events_checked)


def main() -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="keygate's five-minute tour, from Python")
    parser.add_argument("--endpoint", default=env("KEYGATE_ENDPOINT", "http://127.0.0.1:50051"))
    parser.add_argument("--token", default=env("KEYGATE_TOKEN"))
    parser.add_argument("--ca-file", default=env("KEYGATE_CA_CERT"))
    parser.add_argument("--cert-file", default=env("KEYGATE_CLIENT_CERT"))
    parser.add_argument("--key-file", default=env("KEYGATE_CLIENT_KEY"))
    parser.add_argument("--prefix", default="", help="put in front of the key names")
    parser.add_argument("--json", action="store_true", help="one JSON object per step")
    args = parser.parse_args()
    try:
        with connect(
            args.endpoint, args.token, ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file
        ) as kg:
            run(kg, args.prefix, args.json)
    except KeygateError as error:
        raise SystemExit(f"tour: {error}") from None
    except ValueError as error:
        raise SystemExit(f"tour: {error}") from None


if __name__ == "__main__":
    main()
