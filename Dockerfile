# tollgate agent image (starting point; the shipping issue completes and documents it).
# Build: docker build -t tollgate:dev .   Runs `tollgate agent` on Node 24; sources are TypeScript run by
# Node's type stripping, so there is no compile step and no compiler in the final image.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts=false --no-fund --no-audit

FROM node:24-bookworm-slim
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
USER root
ENTRYPOINT ["node", "bin/tollgate.js"]
CMD ["agent"]
