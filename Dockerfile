# imgproxy-py: production image. libvips comes bundled with pyvips[binary]; no system libvips.
FROM python:3.11-slim-bookworm

# jemalloc: glibc malloc fragments badly under long-running multithreaded libvips work
# (libvips developer checklist, "Linux memory allocator"); jemalloc keeps RSS flat and
# returns memory to the OS. No LD_PRELOAD here: `imgproxy-py serve` restarts itself under
# jemalloc wherever Debian puts it (amd64 and arm64 alike) unless IMGPROXY_MALLOC=glibc,
# and sets MALLOC_CONF (background_thread purges dirty pages without a request).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
# VIPS_CONCURRENCY=1: one libvips thread per image; the parallelism is IMGPROXY_WORKERS images at once.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIPS_CONCURRENCY=1 \
    IMGPROXY_BIND=:8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY imgproxy_py ./imgproxy_py
RUN pip install --no-cache-dir . && useradd --system --uid 10001 imgproxy
COPY config ./config

USER 10001
EXPOSE 8080
# Reads the same IMGPROXY_* settings as the server: follows IMGPROXY_BIND, IMGPROXY_PATH_PREFIX
# and IMGPROXY_HEALTH_CHECK_PATH (a fixed 127.0.0.1:8080/health did not).
HEALTHCHECK --interval=10s --timeout=5s CMD ["imgproxy-py", "health"]
CMD ["imgproxy-py", "serve"]
