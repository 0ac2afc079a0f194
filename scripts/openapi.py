"""Builds generated/openapi/stratopt.swagger.json around protoc-gen-openapiv2 (scripts/generate.sh).

`prepare IMAGE OUT`: protoc-gen-openapiv2 refuses a path parameter on a client-streaming RPC
("cannot use path parameter in client streaming"), which Envoy transcodes fine (PushBars:
`POST /v1/feeds/{feed_id}:push`). Such a path gets a placeholder segment in a copy of the buf
image; `finish` puts the real template and its path parameter back.

`finish RAW OUT`: the title, a description, the credentials (bearer token or API key) for
"Try it out", and the restored paths; written with sorted keys so the output is byte-stable.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

PLACEHOLDER = "__path_{}__"
_PARAM = re.compile(r"\{([a-z0-9_.]+)(=[^}]*)?\}")
_RULE_FIELDS = ("get", "put", "post", "delete", "patch")
DESCRIPTION = """\
The REST/JSON face of the stratopt gRPC API, transcoded by the Envoy gateway from the
`google.api.http` annotations of the protos. Send `Authorization: Bearer <access token>`
(from `POST /v1/auth:login`) or `x-api-key: <key>`. 64-bit integers are JSON strings, enums
are names, timestamps RFC 3339. Errors are `google.rpc.Status` bodies with details.
Server-streaming RPCs answer a JSON array delivered incrementally; client-streaming ones take
a JSON array of request messages. See docs/rest.md."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def prepare(image: Path, out: Path) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(image.read_bytes())
    for f in fds.file:
        for service in f.service:
            for method in service.method:
                if not method.client_streaming:
                    continue
                rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
                for verb in _RULE_FIELDS:
                    path = getattr(rule, verb)
                    if "{" in path:
                        setattr(
                            rule, verb, _PARAM.sub(lambda m: PLACEHOLDER.format(m.group(1)), path)
                        )
    out.write_bytes(fds.SerializeToString(deterministic=True))


def finish(raw: Path, out: Path) -> None:
    doc: dict[str, Any] = json.loads(raw.read_text())
    paths: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        params = re.findall(r"__path_([a-z0-9_.]+)__", path)
        for name in params:
            path = path.replace(PLACEHOLDER.format(name), "{" + _camel(name) + "}")
        for op in item.values():
            for name in params:
                op.setdefault("parameters", []).insert(
                    0,
                    {"name": _camel(name), "in": "path", "required": True, "type": "string"},
                )
        paths[path] = item
    doc["paths"] = paths
    doc["info"] = {"title": "stratopt REST API", "version": "v1", "description": DESCRIPTION}
    doc["securityDefinitions"] = {
        "bearer": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Bearer <access token>` from POST /v1/auth:login",
        },
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    doc["security"] = [{"bearer": []}, {"apiKey": []}]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    command, src, dst = argv
    {"prepare": prepare, "finish": finish}[command](Path(src), Path(dst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
