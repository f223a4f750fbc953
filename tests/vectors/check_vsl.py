#!/usr/bin/env python3
"""Independent check of tests/vectors/vsl.json and vsl_gcm.json against
docs/PROTOCOL.md section 1.

Written from the spec, not from the Rust code: derives the keys with
HKDF-SHA256 (salt = label || nonces || suite binding), seals every packet and
opens it again, and compares with the stored bytes:
- VSL1: AES-256-CTR with IV = be64(msgnr) || 0^64, 64-bit block counter in
  the low half, then HMAC-SHA256 truncated to 16 bytes;
- VSL2: AES-256-GCM with nonce = iv XOR (0^32 || be64(msgnr)), associated
  data = msgnr || magic || type || datalen, the tag at offset 8.

Needs the `cryptography` package (pip install cryptography).
Usage: python3 tests/vectors/check_vsl.py [path/to/vsl.json [path/to/vsl_gcm.json]]
"""

import hmac as py_hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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


GCM_MAGIC = b"VSL2"
GCM_LABELS = {
    "c2s_key": (b"VSL2 c2s key", 32),
    "c2s_iv": (b"VSL2 c2s iv", 12),
    "s2c_key": (b"VSL2 s2c key", 32),
    "s2c_iv": (b"VSL2 s2c iv", 12),
}
SUITE_IDS = {b"VSL1": 0x01, b"VSL2": 0x02}


def derive(secret, client_nonce, server_nonce, dh_shared, binding=b""):
    salt = SALT_LABEL + client_nonce + server_nonce + binding
    ikm = secret + (dh_shared or b"")
    return {
        name: HKDF(hashes.SHA256(), 32, salt, label).derive(ikm)
        for name, label in LABELS.items()
    }


def derive_gcm(secret, client_nonce, server_nonce, dh_shared, binding):
    salt = SALT_LABEL + client_nonce + server_nonce + binding
    ikm = secret + dh_shared
    return {
        name: HKDF(hashes.SHA256(), n, salt, label).derive(ikm)
        for name, (label, n) in GCM_LABELS.items()
    }


def gcm_nonce(iv, msgnr):
    return bytes(a ^ b for a, b in zip(iv, b"\0" * 4 + struct.pack(">Q", msgnr)))


def gcm_seal(key, iv, msgnr, ptype, plaintext):
    assert msgnr <= MSGNR_LIMIT and len(plaintext) <= MAX_DATALEN
    aad = struct.pack(">Q", msgnr) + GCM_MAGIC + struct.pack(">BI", ptype, len(plaintext))
    out = AESGCM(key).encrypt(gcm_nonce(iv, msgnr), plaintext, aad)
    c, tag = out[:-16], out[-16:]
    return struct.pack(">Q", msgnr) + tag + GCM_MAGIC + struct.pack(">BI", ptype, len(c)) + c


def gcm_open(key, iv, datagram):
    if len(datagram) < HEADER_LEN or len(datagram) - HEADER_LEN > MAX_DATALEN:
        return None
    if datagram[24:28] != GCM_MAGIC:
        return None
    (msgnr,) = struct.unpack(">Q", datagram[0:8])
    ptype, datalen = struct.unpack(">BI", datagram[28:33])
    if datalen != len(datagram) - HEADER_LEN or msgnr > MSGNR_LIMIT:
        return None
    aad = datagram[0:8] + datagram[24:33]
    try:
        p = AESGCM(key).decrypt(gcm_nonce(iv, msgnr), datagram[33:] + datagram[8:24], aad)
    except InvalidTag:
        return None
    return msgnr, ptype, p


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


def check_vsl1(path):
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
    print(f"ok: {path.name}: {len(vectors)} vectors, {packets} packets reproduced from the spec")


def check_suites(path):
    """vsl_gcm.json: keys bound to the offer and choice, both suites."""
    vectors = json.loads(path.read_text())
    packets = 0
    h = bytes.fromhex
    for i, v in enumerate(vectors):
        offer = h(v["offer"])
        assert 1 <= offer[0] <= 16 and len(offer) == 1 + offer[0], f"vector {i}: offer"
        magic = v["suite"].encode()
        assert v["chosen"] == SUITE_IDS[magic] and v["chosen"] in offer[1:], f"vector {i}"
        binding = offer + bytes([v["chosen"]])
        assert binding == h(v["binding"]), f"vector {i}: binding"
        args = (h(v["secret"]), h(v["client_nonce"]), h(v["server_nonce"]), h(v["dh_shared"]))
        if magic == GCM_MAGIC:
            keys = derive_gcm(*args, binding)
            names = GCM_LABELS
        else:
            keys = derive(*args, binding)
            names = LABELS
        assert set(v["keys"]) == set(names), f"vector {i}: key names"
        for name in names:
            assert keys[name] == h(v["keys"][name]), f"vector {i}: key {name}"
        for j, p in enumerate(v["packets"]):
            d = p["direction"]
            other = {"c2s": "s2c", "s2c": "c2s"}[d]
            msgnr = int(p["msgnr"])
            pt = h(p["plaintext"])
            if magic == GCM_MAGIC:
                dg = gcm_seal(keys[d + "_key"], keys[d + "_iv"], msgnr, p["type"], pt)
                opened = gcm_open(keys[d + "_key"], keys[d + "_iv"], dg)
                reflected = gcm_open(keys[other + "_key"], keys[other + "_iv"], dg)
            else:
                dg = seal(keys[d + "_enc"], keys[d + "_mac"], msgnr, p["type"], pt)
                opened = open_(keys[d + "_enc"], keys[d + "_mac"], dg)
                reflected = open_(keys[other + "_enc"], keys[other + "_mac"], dg)
            assert dg == h(p["datagram"]), f"vector {i} packet {j}: datagram"
            assert opened == (msgnr, p["type"], pt), f"vector {i} packet {j}: open"
            assert reflected is None, f"vector {i} packet {j}: reflection"
            packets += 1
    print(f"ok: {path.name}: {len(vectors)} vectors, {packets} packets reproduced from the spec")


def main():
    here = Path(__file__).parent
    check_vsl1(Path(sys.argv[1]) if len(sys.argv) > 1 else here / "vsl.json")
    check_suites(Path(sys.argv[2]) if len(sys.argv) > 2 else here / "vsl_gcm.json")


if __name__ == "__main__":
    main()
