# pgjobs runs its TypeScript sources directly on Node 24 (type stripping): no build stage.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY crontab ./crontab
COPY pgjobs.config.ts graphile.config.ts ./
USER node
# Requires DATABASE_URL: a container has no use for the embedded server's data folder.
# Or the plain graphile-worker CLI with the pgjobs preset (graphile.config.ts), after
# `pgjobs migrate`: CMD ["npx", "graphile-worker"]
CMD ["node", "src/cli/main.ts", "worker"]
