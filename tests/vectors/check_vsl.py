#!/usr/bin/env python3
"""Independent check of tests/vectors/vsl.json against docs/PROTOCOL.md section 1.

Written from the spec, not from the Rust code: derives the four keys with
HKDF-SHA256, seals every packet (AES-256-CTR with IV = be64(msgnr) || 0^64,
64-bit block counter in the low half, then HMAC-SHA256 truncated to 16 bytes)
and opens it again, and compares with the stored bytes.

Needs the `cryptography` package (pip install cryptography).
Usage: python3 tests/vectors/check_vsl.py [path/to/vsl.json]
"""

import hmac as py_hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HEADER_LEN = 33
MAX_DATALEN = 65527 - HEADER_LEN
MSGNR_LIMIT = (1 << 60) - 1
MAGIC = b"VSL1"
SALT_LABEL = b"VSL1 session keys"
LABELS = {
    "c2s_enc": b"VSL1 c2s enc",
    "c2s_mac": b"VSL1 c2s mac",
    "s2c_enc": b"VSL1 s2c enc",
    "s2c_mac": b"VSL1 s2c mac",
}


def derive(secret, client_nonce, server_nonce, dh_shared):
    salt = SALT_LABEL + client_nonce + server_nonce
    ikm = secret + (dh_shared or b"")
    return {
        name: HKDF(hashes.SHA256(), 32, salt, label).derive(ikm)
        for name, label in LABELS.items()
    }


def keystream_xor(enc_key, msgnr, data):
    # Ctr64BE: block j uses AES(be64(msgnr) || be64(j)). A packet has at most
    # 4094 blocks, so the low half never wraps and a 128-bit CTR over the
    # same initial block gives the same keystream here.
    iv = struct.pack(">QQ", msgnr, 0)
    return Cipher(algorithms.AES(enc_key), modes.CTR(iv)).encryptor().update(data)


def mac16(mac_key, msgnr, ptype, ciphertext):
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(struct.pack(">Q", msgnr))
    h.update(MAGIC + struct.pack(">BI", ptype, len(ciphertext)))
    h.update(ciphertext)
    return h.finalize()[:16]


def seal(enc_key, mac_key, msgnr, ptype, plaintext):
    assert msgnr <= MSGNR_LIMIT and len(plaintext) <= MAX_DATALEN
    c = keystream_xor(enc_key, msgnr, plaintext)
    tag = mac16(mac_key, msgnr, ptype, c)
    return struct.pack(">Q", msgnr) + tag + MAGIC + struct.pack(">BI", ptype, len(c)) + c


def open_(enc_key, mac_key, datagram):
    if len(datagram) < HEADER_LEN or len(datagram) - HEADER_LEN > MAX_DATALEN:
        return None
    if datagram[24:28] != MAGIC:
        return None
    (msgnr,) = struct.unpack(">Q", datagram[0:8])
    ptype, datalen = struct.unpack(">BI", datagram[28:33])
    if datalen != len(datagram) - HEADER_LEN or msgnr > MSGNR_LIMIT:
        return None
    c = datagram[HEADER_LEN:]
    if not py_hmac.compare_digest(mac16(mac_key, msgnr, ptype, c), datagram[8:24]):
        return None
    return msgnr, ptype, keystream_xor(enc_key, msgnr, c)


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("vsl.json")
    vectors = json.loads(path.read_text())
    packets = 0
    for i, v in enumerate(vectors):
        h = bytes.fromhex
        dh = h(v["dh_shared"]) if "dh_shared" in v else None
        keys = derive(h(v["secret"]), h(v["client_nonce"]), h(v["server_nonce"]), dh)
        for name in LABELS:
            assert keys[name] == h(v["keys"][name]), f"vector {i}: key {name}"
        for j, p in enumerate(v["packets"]):
            d = p["direction"]
            other = {"c2s": "s2c", "s2c": "c2s"}[d]
            msgnr = int(p["msgnr"])
            dg = seal(keys[d + "_enc"], keys[d + "_mac"], msgnr, p["type"], h(p["plaintext"]))
            assert dg == h(p["datagram"]), f"vector {i} packet {j}: datagram"
            opened = open_(keys[d + "_enc"], keys[d + "_mac"], dg)
            assert opened == (msgnr, p["type"], h(p["plaintext"])), f"vector {i} packet {j}: open"
            assert open_(keys[other + "_enc"], keys[other + "_mac"], dg) is None, "reflection"
            packets += 1
    print(f"ok: {len(vectors)} vectors, {packets} packets reproduced from the spec")


if __name__ == "__main__":
    main()
