// The console is served by the gateway at `/` (same origin as gRPC-Web), so the build uses
// relative asset paths and needs no proxy. `npm run dev` proxies the API to a running gateway.
import { defineConfig } from "vite";

const gateway = process.env.STRATOPT_GATEWAY ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "./",
  resolve: {
    // @stratopt/api is a file: link to generated/js. Resolving through the link (not its real
    // path) makes its `@bufbuild/protobuf` import find web/node_modules, so the bundle holds
    // one copy of the runtime, and generated/js needs no node_modules of its own.
    preserveSymlinks: true,
    dedupe: ["@bufbuild/protobuf"],
  },
  build: {
    outDir: "dist",
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "/stratopt.v1.": gateway,
      "/v1/": gateway,
    },
  },
});
