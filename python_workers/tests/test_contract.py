"""Acceptance: a Python gRPC client generated only from proto/ calls a running worker.

The stubs are generated here from the .proto files into a temporary directory, and the
client runs in a separate interpreter whose PYTHONPATH is that directory only, so the
package's own generated modules (pds_dpo_workers/gen) cannot stand in for them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap

import pytest

from worker_harness import PYTHON, REPO_ROOT

PROTO_ROOT = REPO_ROOT / "proto"

CLIENT = textwrap.dedent(
    r'''
    import json, os, struct, sys

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    from pdsdpo.v1 import common_pb2, image_generator_pb2, image_generator_pb2_grpc, worker_pb2, worker_pb2_grpc

    address, gen_dir = sys.argv[1], sys.argv[2]
    out = {"stub_files": [common_pb2.__file__, image_generator_pb2_grpc.__file__, worker_pb2_grpc.__file__]}
    # None of the package's own modules (and its gen/ tree) may be loaded.
    out["package_modules"] = sorted(m for m in sys.modules if m.startswith("pds_dpo_workers"))

    with grpc.insecure_channel(address) as ch:
        info = worker_pb2_grpc.WorkerServiceStub(ch).Describe(worker_pb2.DescribeRequest(), timeout=30).info
        out["describe"] = {
            "kind": common_pb2.WorkerKind.Name(info.kind),
            "weights_sha256": info.model.weights_sha256,
            "model_class": info.model.model_class,
            "library_versions": dict(info.library_versions),
            "protocol_version": info.protocol_version,
            "pid": info.pid,
        }

        req = image_generator_pb2.GenerateRequest(
            items=[
                image_generator_pb2.ImageGenerationItem(id=i, prompt="a photo of a cat", steps=2, width=64, height=64, seed=s)
                for i, s in (("a", 1), ("b", 2))
            ],
            output=common_pb2.OUTPUT_MODE_INLINE,
        )
        images = []
        for resp in image_generator_pb2_grpc.ImageGeneratorServiceStub(ch).Generate(req, timeout=60):
            if resp.WhichOneof("event") != "image":
                continue
            img = resp.image
            data = img.image.inline
            # PNG IHDR: width and height are the first two big-endian uint32 after the chunk header.
            w, h = struct.unpack(">II", data[16:24]) if len(data) >= 24 else (0, 0)
            images.append({
                "id": img.id,
                "blob": img.image.WhichOneof("kind"),
                "png_magic": data[:8].hex(),
                "png_size": [w, h],
                "error_code": img.error.code,
            })
        out["images"] = images

        out["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        )

        reflect = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        out["services"] = sorted(s.name for r in replies for s in r.list_services_response.service)

    print(json.dumps(out))
    '''
)


@pytest.fixture(scope="module")
def generated_stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("contract-stubs")
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "pdsdpo" / "v1").glob("*.proto"))
    assert len(protos) >= 2, f"no protos found under {PROTO_ROOT}"
    subprocess.run(
        [PYTHON, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", *protos],
        check=True,
        cwd=PROTO_ROOT,
        capture_output=True,
        timeout=60,
    )
    assert (out / "pdsdpo" / "v1" / "image_generator_pb2_grpc.py").is_file()
    (out / "client.py").write_text(CLIENT)
    return out


@pytest.fixture(scope="module")
def client_result(generated_stubs, generator_worker):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(generated_stubs)
    proc = subprocess.run(
        [PYTHON, str(generated_stubs / "client.py"), generator_worker.address, str(generated_stubs)],
        cwd=generated_stubs,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"client failed:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_client_uses_stubs_generated_from_proto(client_result, generated_stubs):
    # The stubs the client imported are the freshly generated ones, not the package's.
    for f in client_result["stub_files"]:
        assert os.path.realpath(f).startswith(os.path.realpath(generated_stubs)), f
    assert client_result["package_modules"] == []


def test_describe(client_result, generator_worker):
    d = client_result["describe"]
    assert d["kind"] == "WORKER_KIND_IMAGE_GENERATOR"
    assert re.fullmatch(r"[0-9a-f]{64}", d["weights_sha256"])
    assert d["model_class"] == "StableDiffusionPipeline"
    assert {"torch", "diffusers"} <= set(d["library_versions"])
    assert all(d["library_versions"][k] for k in ("torch", "diffusers"))
    assert d["protocol_version"] == "1"
    assert d["pid"] == generator_worker.process.pid


def test_generate_streams_one_png_per_item(client_result):
    images = client_result["images"]
    assert sorted(i["id"] for i in images) == ["a", "b"]
    for img in images:
        assert img["error_code"] == ""
        assert img["blob"] == "inline"
        assert bytes.fromhex(img["png_magic"]) == b"\x89PNG\r\n\x1a\n"
        assert img["png_size"] == [64, 64]


def test_health_serving(client_result):
    assert client_result["health"] == "SERVING"


def test_reflection_lists_services(client_result):
    services = set(client_result["services"])
    assert {"pdsdpo.v1.ImageGeneratorService", "pdsdpo.v1.WorkerService", "grpc.health.v1.Health"} <= services
    # A generator does not claim another kind's service.
    assert "pdsdpo.v1.ImageScorerService" not in services

