# masbc-edge gateway image. Build: docker build -t masbc-edge .
# Run:   docker run -v masbc-data:/data -v $PWD/config:/app/config:ro masbc-edge
# The data volume holds the SQLite stores, the gateway key and the OPC UA PKI: keep it persistent.

# --- dependencies: production only, native addons (better-sqlite3, serialport) from their prebuilds
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    MASBC_DATA_DIR=/data
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
# OPC UA client, libp2p and API ports are outbound or configured in gateway.yaml; 8080 is the API default.
EXPOSE 8080
# Healthy while the running gateway refreshes its status file (every few seconds).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "bin/masbc-edge.js", "health", "--config", "/app/config/gateway.yaml"]
ENTRYPOINT ["node", "bin/masbc-edge.js"]
CMD ["run", "--config", "/app/config/gateway.yaml"]
