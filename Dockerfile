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
USER node
# Requires DATABASE_URL. embedded-postgres is a devDependency, not installed here: without
# DATABASE_URL the worker says so in one line and exits 1.
CMD ["node", "src/cli/main.ts", "worker"]
