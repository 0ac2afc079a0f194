#!/usr/bin/env bash
# Regenerates every committed artifact of the contract: googleapis copies, the Envoy
# descriptor, and Python/Go/JS stubs. Pinned tool versions make the output byte-stable,
# so CI can fail on any drift (`make check-generated`).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
export PATH="$PWD/.venv/bin:$PWD/.bin:$PATH"
PROTOC_GEN_GO_VERSION=v1.36.11
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0
PROTOC_GEN_OPENAPIV2_VERSION=v2.33.0

echo "== googleapis protos from googleapis-common-protos"
GAPI=$($PY -c 'import os, google.api.annotations_pb2 as a; print(os.path.dirname(os.path.dirname(a.__file__)))')
rm -rf third_party/googleapis && mkdir -p third_party/googleapis/google/api third_party/googleapis/google/rpc
for f in annotations http field_behavior httpbody; do cp "$GAPI/api/$f.proto" third_party/googleapis/google/api/; done
for f in status error_details code; do cp "$GAPI/rpc/$f.proto" third_party/googleapis/google/rpc/; done

echo "== buf format + lint"
buf format -d --exit-code protos
buf lint protos

echo "== descriptor set for Envoy (with imports, so google.rpc details convert to JSON)"
mkdir -p build deploy/envoy
buf build --exclude-source-info -o deploy/envoy/stratopt.binpb
buf build -o build/image.binpb

echo "== the gateway's copy of deploy/envoy, shipped as package data (server/gateway.py reads it)"
mkdir -p src/stratopt/server/envoy
cp deploy/envoy/stratopt.binpb deploy/envoy/envoy.yaml.tmpl src/stratopt/server/envoy/

echo "== Python"
rm -rf generated/python/stratopt/v1/*_pb2*.py* 
$PY -m grpc_tools.protoc --descriptor_set_in=build/image.binpb \
  --python_out=generated/python --grpc_python_out=generated/python \
  --mypy_out=generated/python --mypy_grpc_out=generated/python \
  $(cd protos && ls stratopt/v1/*.proto)

echo "== Go"
if [ ! -x .bin/protoc-gen-go ] || ! .bin/protoc-gen-go --version | grep -q "${PROTOC_GEN_GO_VERSION}"; then
  GOBIN="$PWD/.bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
fi
if [ ! -x .bin/protoc-gen-go-grpc ] || ! .bin/protoc-gen-go-grpc --version | grep -q "${PROTOC_GEN_GO_GRPC_VERSION#v}"; then
  GOBIN="$PWD/.bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
fi
rm -rf generated/go/stratopt
buf generate --template buf.gen.go.yaml
(cd generated/go && go mod tidy >/dev/null 2>&1 && go build ./...)

echo "== OpenAPI (served by the gateway at /openapi.json, with Swagger UI at /docs)"
if [ ! -x .bin/protoc-gen-openapiv2 ] || ! .bin/protoc-gen-openapiv2 --version | grep -q "${PROTOC_GEN_OPENAPIV2_VERSION}"; then
  GOBIN="$PWD/.bin" go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@${PROTOC_GEN_OPENAPIV2_VERSION}"
fi
rm -rf build/openapi
$PY scripts/openapi.py prepare build/image.binpb build/openapi-input.binpb
buf generate build/openapi-input.binpb --path stratopt --template buf.gen.openapi.yaml
$PY scripts/openapi.py finish build/openapi/stratopt.swagger.json generated/openapi/stratopt.swagger.json
(cd deploy/apidocs && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
DOCS=src/stratopt/server/docs
cp generated/openapi/stratopt.swagger.json $DOCS/openapi.json
UI=deploy/apidocs/node_modules/swagger-ui-dist
cp $UI/swagger-ui-bundle.js $UI/swagger-ui.css $UI/favicon-32x32.png $DOCS/
cp $UI/LICENSE $DOCS/swagger-ui.LICENSE

echo "== JS/TS"
(cd generated/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
rm -rf generated/js/src
buf generate --template buf.gen.js.yaml
echo "done"
