#!/usr/bin/env python3
"""A fedtune device written from proto/fedtune.proto and proto/CONTRACT.md alone (Python's
standard protobuf, grpcio and PyNaCl; no fedtune code). It enrols with a proof of possession,
reads the program, downloads the base (interrupted, then resumed) and the adapter, checks in,
and uploads a sealed f32 update whose values are a fixed function of their position, so the
test can check that the coordinator applied exactly this update in exactly this layout.

Usage: device.py ADDRESS PROGRAM_ID TOKEN   (stubs from grpc_tools.protoc on PYTHONPATH)
Prints one JSON object on stdout.
"""
import hashlib
import json
import secrets
import struct
import sys
import time

import grpc
import nacl.public
import nacl.signing
import nacl.utils

import fedtune_pb2 as pb
import fedtune_pb2_grpc as pb_grpc

SERVICE = "/fedtune.v1.Coordinator/"
TARGET_ORDER = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
CHUNK = 1 << 20


def delta_a(layer, k, j):
    """The update's value for A[k, j] (A is [rank, in]) of every target in `layer`."""
    return 1e-4 * (((2 * k + j + layer) % 3) - 1)


def delta_b(layer, o, k):
    """The update's value for B[o, k] (B is [out, rank])."""
    return 1e-3 * (((o + 3 * k + layer) % 5) - 2)


class Device:
    def __init__(self, address, program_id):
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.CoordinatorStub(self.channel)
        self.program_id = program_id
        self.sign_key = nacl.signing.SigningKey.generate()
        self.box_key = nacl.public.PrivateKey.generate()
        self.device_id = None

    def sign(self, method, msg, program_id=None):
        """Sign `msg` for `method`: its bytes without auth, as this serialiser writes them."""
        msg.ClearField("auth")
        payload = msg.SerializeToString()
        nonce = secrets.token_hex(16)
        ts = int(time.time() * 1000)
        text = "|".join(["fedtune.v1", SERVICE + method, program_id or self.program_id, self.device_id, nonce, str(ts), hashlib.sha256(payload).hexdigest()])
        sig = self.sign_key.sign(text.encode("utf-8")).signature
        msg.auth.CopyFrom(pb.Auth(device_id=self.device_id, nonce=nonce, timestamp_ms=ts, signature=sig))
        return msg

    def enroll(self, token):
        pub = bytes(self.sign_key.verify_key)
        box = bytes(self.box_key.public_key)
        nonce = secrets.token_hex(16)
        ts = int(time.time() * 1000)
        text = "|".join(["fedtune.v1", SERVICE + "Enroll", self.program_id, pub.hex(), box.hex(), nonce, str(ts)])
        proof = pb.EnrolmentProof(nonce=nonce, timestamp_ms=ts, signature=self.sign_key.sign(text.encode("utf-8")).signature)
        res = self.stub.Enroll(pb.EnrollRequest(program_id=self.program_id, enrolment_token=token, sign_public_key=pub, box_public_key=box, label="python", proof=proof), timeout=10)
        self.device_id = res.device_id
        return res

    def download(self, ref, interrupt_after=None):
        """Download a blob; with interrupt_after, stop after that many chunks of 64 KiB and resume."""
        data = b""
        resumed_from = 0
        if interrupt_after:
            # offset 0 and the default chunk size are proto3 defaults: omitted from the signed bytes
            req = self.sign("DownloadBlob", pb.DownloadBlobRequest(sha256=ref.sha256, max_chunk_bytes=64 * 1024))
            call = self.stub.DownloadBlob(req, timeout=60)
            for i, chunk in enumerate(call):
                assert chunk.offset == len(data), (chunk.offset, len(data))
                data += chunk.data
                if i + 1 >= interrupt_after:
                    call.cancel()
                    break
            resumed_from = len(data)
        req = self.sign("DownloadBlob", pb.DownloadBlobRequest(sha256=ref.sha256, offset=len(data)))
        for chunk in self.stub.DownloadBlob(req, timeout=120):
            assert chunk.offset == len(data), (chunk.offset, len(data))
            data += chunk.data
        assert len(data) == ref.size_bytes, (len(data), ref.size_bytes)
        assert hashlib.sha256(data).hexdigest() == ref.sha256, "blob hash mismatch"
        return data, resumed_from


def adapter_layout(blob, lora):
    """The update layout from the adapter's safetensors header: per layer, targets in the fixed
    order wq, wk, wv, wo, w1, w2, w3, then Aᵀ ([in, r] row-major) and Bᵀ ([r, out] row-major);
    under freeze_a only the Bᵀ blocks."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    layers = sorted({int(k.split(".")[1]) for k in header if k.startswith("layers.")})
    targets = [t for t in TARGET_ORDER if t in lora.targets]
    values = []
    for layer in layers:
        for t in targets:
            a = header[f"layers.{layer}.{t}.lora_A"]
            b = header[f"layers.{layer}.{t}.lora_B"]
            assert a["dtype"] == "F32" and b["dtype"] == "F32"
            r, in_dim = a["shape"]
            out_dim, r2 = b["shape"]
            assert r == r2 == lora.rank
            if not lora.freeze_a:
                values += [delta_a(layer, k, j) for j in range(in_dim) for k in range(r)]
            values += [delta_b(layer, o, k) for k in range(r) for o in range(out_dim)]
    return values


def main():
    address, program_id, token = sys.argv[1:4]
    d = Device(address, program_id)
    out = {}
    enrolled = d.enroll(token)
    out["device_id"] = d.device_id
    cfg = d.stub.GetProgram(d.sign("GetProgram", pb.GetProgramRequest(program_id=program_id)), timeout=10)
    assert cfg.program_box_public_key == enrolled.program_box_public_key
    base, resumed_from = d.download(cfg.base, interrupt_after=2)
    out["base_bytes"] = len(base)
    out["base_resumed_from"] = resumed_from
    adapter, _ = d.download(cfg.adapter)
    values = adapter_layout(adapter, cfg.lora)
    out["update_length"] = len(values)

    # a captured signed WatchRounds sent as a CheckIn must be refused: signatures name their method
    watch = d.sign("WatchRounds", pb.WatchRoundsRequest(program_id=program_id))
    raw_check_in = d.channel.unary_unary(SERVICE + "CheckIn", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        raw_check_in(watch.SerializeToString(), timeout=10)
        out["replay"] = "OK"
    except grpc.RpcError as e:
        out["replay"] = e.code().name

    work = None
    for _ in range(100):
        res = d.stub.CheckIn(d.sign("CheckIn", pb.CheckInRequest(program_id=program_id, adapter_version=cfg.adapter_version)), timeout=10)
        if res.WhichOneof("result") == "work":
            work = res.work
            break
        time.sleep(max(res.later.retry_after_ms, 50) / 1000)
    assert work is not None, "no work offered"
    assert work.encoding == "f32", work.encoding
    out["round_id"] = work.round_id

    plain = struct.pack(f"<{len(values)}f", *values)
    box = nacl.public.Box(d.box_key, nacl.public.PublicKey(cfg.program_box_public_key))
    sealed = bytes(box.encrypt(plain, nacl.utils.random(nacl.public.Box.NONCE_SIZE)))
    assert len(sealed) == 40 + len(plain)
    header = d.sign("UploadUpdate", pb.UpdateHeader(program_id=program_id, round_id=work.round_id, num_examples=8, payload_bytes=len(sealed), payload_sha256=hashlib.sha256(sealed).hexdigest(), encoding="f32", unclipped=True))
    chunks = [pb.UpdateChunk(header=header)] + [pb.UpdateChunk(data=sealed[i : i + CHUNK]) for i in range(0, len(sealed), CHUNK)]
    receipt = d.stub.UploadUpdate(iter(chunks), timeout=60)
    out["uploaded_bytes"] = receipt.bytes_received
    out["receipt_round"] = receipt.round_id
    print(json.dumps(out))
    d.channel.close()


if __name__ == "__main__":
    main()
