# The tollgate agent image: Node 24 (glibc, Debian 12) running `tollgate agent`, with the production
# dependencies only. No compilers, no npm, no shell, no nft binary: the agent programs nf_tables over netlink.
#
#   docker build -t tollgate:0.1.0 .                                   # this machine's architecture
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/tollgate:0.1.0 --push .
#
# BuildKit (the default of `docker build`) sets TARGETARCH; the legacy builder falls back to the build
# machine's architecture. The sources are TypeScript run by Node's type stripping, so nothing is compiled. The only native code is
# the `netlink` package's addon, shipped prebuilt (N-API, glibc) for linux-x64 and linux-arm64: the deps
# stage runs on the build machine's own platform (no emulation), installs from the lockfile without running
# install scripts, keeps only the target architecture's prebuild and drops what only editors read (type
# declarations and source maps: half of the ~100 MB that npm installs). Pin the base images by digest for a
# byte-for-byte reproducible build (README: "Container image").
#
# Without Docker, scripts/build-image.sh assembles the same image (Debian's libraries, the pinned Node, this
# file's /app) with crane; test/ship/image.test.ts compares its config with the ENTRYPOINT, CMD, ENV and
# WORKDIR below, so a change here needs the same change there.

ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12

FROM --platform=$BUILDPLATFORM ${BUILD_IMAGE} AS deps
ARG TARGETARCH
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev also leaves out the pinned `node` devDependency: the runtime image brings Node 24 itself.
# --ignore-scripts: netlink's only install script is node-gyp-build, which would merely find the prebuild that
# node-gyp-build also finds at run time; skipping it keeps node-gyp and compilers out of the picture.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --no-update-notifier \
  && case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
       amd64) keep=linux-x64 ;; \
       arm64) keep=linux-arm64 ;; \
       *) echo "tollgate: netlink has prebuilds for amd64 and arm64 only, not '$TARGETARCH'" >&2; exit 1 ;; \
     esac \
  && test -f "node_modules/netlink/prebuilds/$keep/node.napi.node" \
  && find node_modules/netlink/prebuilds -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} + \
  && rm -rf node_modules/netlink/src node_modules/netlink/binding.gyp \
  && find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete \
  && npm cache clean --force

FROM ${RUNTIME_IMAGE}
WORKDIR /app
# distroless keeps node in /nodejs/bin; on PATH so manifests can say `node` (daemonset/cleanup does).
# NODE_COMPILE_CACHE: Node's module compile cache, warmed below with the agent's modules (type-stripped
# sources and bytecode), so the agent starts without loading Node's TypeScript stripper (~30 MB less RSS).
ENV NODE_ENV=production \
    NODE_COMPILE_CACHE=/app/.compile-cache \
    PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
# src/ without src/lab and src/scenario (.dockerignore): the harness is not product; `tollgate lab`, simulate,
# compile, explain and lint fail here with E_NOT_INSTALLED and say where they run.
COPY src ./src
COPY scripts/warm-compile-cache.js ./scripts/
RUN ["/nodejs/bin/node", "/app/scripts/warm-compile-cache.js", "/app/.compile-cache"]
# Smoke test of the target platform: loads the agent command, including the netlink addon (emulated when
# cross-building). Writes nothing.
RUN ["/nodejs/bin/node", "/app/bin/tollgate.js", "agent", "--help"]
# Root (uid 0) is the default user of this base; the DaemonSet grants it CAP_NET_ADMIN and nothing else.
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/tollgate.js"]
CMD ["agent"]
