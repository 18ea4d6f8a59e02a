#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/seed-*) from real inputs: envelopes and page
tokens as the gateway forms them, the providers' documented URIs, the README's example
configurations, keys, signatures and a certificate made with openssl, and the requests the
emulator tests send. Run from anywhere; rewrites only seed-* files."""
import base64, hashlib, os, re, struct, subprocess, tempfile, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write(target, items):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        if old.startswith("seed-"):
            os.remove(os.path.join(d, old))
    for i, data in enumerate(items):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, f"seed-{i:02d}"), "wb") as f:
            f.write(data)


def short_digest(parts):
    h = hashlib.sha256()
    for p in parts:
        b = p.encode()
        h.update(struct.pack(">Q", len(b)))
        h.update(b)
    return h.hexdigest()[:12]


def page_token(filters, position):
    scope = short_digest([filters])
    check = short_digest([scope, position])
    pos = base64.urlsafe_b64encode(position.encode()).rstrip(b"=").decode()
    return f"{pos}.{scope}.{check}"


def envelope(key_id, version, blob):
    return b"kg\x01" + uuid.UUID(key_id).bytes + struct.pack(">I", version) + blob


# --- envelope ------------------------------------------------------------------------------
kid = "0190a5c2-7b1e-7c3d-9f00-1234567890ab"
write("envelope", [
    envelope(kid, 1, os.urandom(12) + b"secret data" + os.urandom(16)),
    envelope(kid, 7, os.urandom(256)),
    envelope("00000000-0000-0000-0000-000000000000", 0xFFFFFFFF, b"x"),
    "owner=alice;state=enabled\n" + page_token("owner=alice;state=enabled", "keys/payments/card"),
    "\n" + page_token("", "42"),
    # the provider kit's tokens: base64url of a prefix and the cursor
    base64.urlsafe_b64encode(b"kgpage:v1:cursor-17").decode(),
])

# --- provider_parsers: selector byte, then the input -----------------------------------------
sel = lambda n, s: bytes([n]) + (s.encode() if isinstance(s, str) else s)
ckaid = b"kg" + hashlib.sha256(b"k").digest()[:8] + bytes([1]) + struct.pack(">I", 3)
write("provider_parsers", [
    sel(0, "awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    sel(0, "awskms:///arn:aws:kms:eu-west-1:111122223333:alias/payments"),
    sel(0, "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab"),
    sel(1, "gcpkms://projects/p/locations/global/keyRings/ring/cryptoKeys/payments-card"),
    sel(1, "projects/p/locations/global/keyRings/ring/cryptoKeys/k/cryptoKeyVersions/3"),
    sel(2, "azurekms://vault.example.net/keys/payments-card"),
    sel(2, "https://vault.example.net/keys/payments-card/0123456789abcdef0123456789abcdef"),
    sel(3, "pkcs11:token=keygate;object=payments%2Fcard;id=%6B%67%01"),
    sel(3, "pkcs11:token=t;object=o?pin-source=file:/x"),
    sel(4, "payments-card-dek.kg.aes-256-gcm.0b5e-9f"),
    sel(5, ckaid),
    sel(6, b"\x01\x00" + b"\x00" + os.urandom(255)),
    sel(7, os.urandom(12) + b"ciphertext" + os.urandom(16)),
    sel(7 + 8 * 4, b"aad!" + os.urandom(40)),
])

# --- config: the README's example configurations ----------------------------------------------
readme = open(os.path.join(ROOT, "README.md")).read()
blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
blocks.append('[listen.tls]\ncert_file = "s.pem"\nkey_file = "s.key"\nclient_ca_file = "ca.pem"\n'
              'crl_file = "crl.pem"\nreload_interval = "200ms"\n\n[[tokens]]\nprincipal = "svc"\n'
              'kind = "service-account"\nroles = ["key-admin"]\nenvironments = ["dev"]\n'
              'certificate = { uri = "spiffe://t/svc" }\ncertificate_alone = true\n')
write("config", blocks)


# --- der_spki: keys, signatures and a certificate from openssl ---------------------------------
def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


with tempfile.TemporaryDirectory() as tmp:
    ec = os.path.join(tmp, "ec.pem")
    rsa = os.path.join(tmp, "rsa.pem")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ec)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa)
    ec_spki = openssl("pkey", "-in", ec, "-pubout", "-outform", "DER")
    rsa_spki = openssl("pkey", "-in", rsa, "-pubout", "-outform", "DER")
    msg = os.path.join(tmp, "msg")
    open(msg, "wb").write(b"message")
    sig = openssl("dgst", "-sha256", "-sign", ec, msg)
    cert = openssl("req", "-x509", "-key", ec, "-subj", "/CN=svc-a", "-days", "1",
                   "-addext", "subjectAltName=URI:spiffe://keygate.test/ns/payments/sa/svc-a",
                   "-outform", "DER")
    point = ec_spki[-65:]
    write("der_spki", [
        bytes([0]) + ec_spki,
        bytes([0]) + rsa_spki,
        bytes([1]) + sig,
        bytes([2]) + os.urandom(64),
        bytes([3, 10]) + bytes.fromhex("06082a8648ce3d030107") + b"\x04\x41" + point,
        bytes([4]) + rsa_spki,
        bytes([5]) + cert,
    ])

# --- emulators: requests as the tests and SDKs send them ---------------------------------------
M = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}


def req(method, target, body=""):
    return bytes([M[method]]) + target.encode() + b"\n" + body.encode()


ring = "/v1/projects/p/locations/global/keyRings/r"
key = ring + "/cryptoKeys/k"
gcp = [
    [req("POST", "/v1/projects/p/locations/global/keyRings?keyRingId=r"),
     req("POST", ring + "/cryptoKeys?cryptoKeyId=k", '{"purpose":"ENCRYPT_DECRYPT"}'),
     req("POST", key + ":encrypt", '{"plaintext":"aGVsbG8=","additionalAuthenticatedData":"YQ=="}'),
     req("GET", key + "/cryptoKeyVersions?pageSize=1")],
    [req("POST", "/v1/projects/p/locations/global/keyRings?keyRingId=r"),
     req("POST", ring + "/cryptoKeys?cryptoKeyId=k",
         '{"purpose":"ASYMMETRIC_SIGN","versionTemplate":{"algorithm":"EC_SIGN_P256_SHA256"},"labels":{"owner":"alice"}}'),
     req("POST", key + "/cryptoKeyVersions/1:asymmetricSign", '{"digest":{"sha256":"' + base64.b64encode(hashlib.sha256(b"m").digest()).decode() + '"}}'),
     req("GET", key + "/cryptoKeyVersions/1/publicKey?publicKeyFormat=PEM")],
    [req("POST", "/v1/projects/p/locations/global/keyRings?keyRingId=r"),
     req("POST", ring + "/cryptoKeys?cryptoKeyId=k&skipInitialVersionCreation=true",
         '{"purpose":"MAC","versionTemplate":{"algorithm":"HMAC_SHA256"}}'),
     req("PATCH", key + "?updateMask=labels", '{"labels":{"a":"b"}}'),
     req("POST", key + "/cryptoKeyVersions/1:destroy")],
    [req("GET", "/v1/projects/p/locations/global/keyRings?pageSize=5&pageToken=abc"),
     req("POST", ring + "/importJobs?importJobId=j", '{"importMethod":"RSA_OAEP_3072_SHA256","protectionLevel":"SOFTWARE"}')],
]
write("gcp_emulator", [b"\x00".join(r) for r in gcp])

v = "?api-version=7.5"
azure = [
    [req("POST", "/keys/k/create" + v, '{"kty":"EC","crv":"P-256","key_ops":["sign","verify"]}'),
     req("POST", "/keys/k//sign" + v, '{"alg":"ES256","value":"' + base64.urlsafe_b64encode(hashlib.sha256(b"m").digest()).decode().rstrip("=") + '"}'),
     req("GET", "/keys/k/versions" + v + "&maxresults=1")],
    [req("POST", "/keys/k/create" + v, '{"kty":"oct-HSM","key_size":256}'),
     req("POST", "/keys/k//encrypt" + v, '{"alg":"A256GCM","value":"aGVsbG8","aad":"YQ"}'),
     req("PATCH", "/keys/k" + v, '{"attributes":{"enabled":false},"tags":{"owner":"alice"}}'),
     req("DELETE", "/keys/k" + v),
     req("POST", "/deletedkeys/k/recover" + v)],
    [req("PUT", "/keys/k/rotationpolicy" + v, '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}]}'),
     req("GET", "/keys" + v),
     req("POST", "/tenant/oauth2/v2.0/token", "grant_type=client_credentials&client_id=a&client_secret=b&scope=https%3A%2F%2Fvault.azure.net%2F.default")],
]
write("azure_emulator", [bytes([0]) + b"\x00".join(azure[0]), bytes([1]) + b"\x00".join(azure[1]),
                         bytes([0]) + b"\x00".join(azure[2])])
print("seeds written")
