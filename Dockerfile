# syntax=docker/dockerfile:1
# dsr-agent: multi-stage build. The runtime image holds the compiled JS, the JSON Schemas and
# production dependencies only, runs as the unprivileged "node" user and serves on 8080.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    DSR_AGENT_DATA_DIR=/var/lib/dsr-agent
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root schemas ./schemas
RUN mkdir -p /var/lib/dsr-agent && chown node:node /var/lib/dsr-agent
USER node
EXPOSE 8080
VOLUME ["/var/lib/dsr-agent"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Heap flags keep peak memory flat on huge access responses (docs/PERFORMANCE.md, Goal 3). No node
# flags here: the CLI sets up its own heap limits (src/heap-flags.ts, one place).
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
