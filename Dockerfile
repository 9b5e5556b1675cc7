# masbc-edge image: a gateway (default command) or a member's validator (`peer`). Build: docker build -t masbc-edge .
# Gateway: docker run -v masbc-data:/data -v $PWD/config:/app/config:ro -p 127.0.0.1:8090:8090 masbc-edge
# The data volume holds the SQLite stores, the keys and the OPC UA PKI: keep it persistent and backed up.
# compose.yaml runs one member (validator and gateway); docs/deploy.md walks through it.

# --- dependencies: production only, native addons (better-sqlite3, serialport) from their prebuilds
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime
FROM node:24-bookworm-slim
# MASBC_OPS_HOST: inside the container the status server binds all interfaces, so that the port can be
# published at all; publish it to loopback or a trusted network only (it has no authentication).
ENV NODE_ENV=production \
    MASBC_DATA_DIR=/data \
    MASBC_OPS_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY simulators ./simulators
COPY config ./config
# The node image's unprivileged user; it owns only the data folder.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# What the app binds: 8090 the status page, /metrics, /health and /ready (gateway.yaml ops.port);
# 8080 the validator HTTP API (a gateway's api.port with api.enabled, or `peer --api-port 8080`);
# 4001 libp2p between validators (the port in this member's genesis entry, as docs/deploy.md uses).
# A gateway with chain role client and its drivers only dial out.
EXPOSE 8090 8080 4001
# Ready while every device is connected, the outbox drains, the chain finalises and the disk has room
# (`masbc-edge health` asks the gateway's /ready and names every reason). For a validator container,
# override it: health --url http://127.0.0.1:<ops port>/ (compose.yaml does).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["node", "bin/masbc-edge.js", "health", "--config", "/app/config/gateway.yaml"]
ENTRYPOINT ["node", "bin/masbc-edge.js"]
CMD ["run", "--config", "/app/config/gateway.yaml"]
