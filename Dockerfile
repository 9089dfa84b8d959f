# imgproxy-py: production image. libvips comes bundled with pyvips[binary]; no system libvips.
FROM python:3.11-slim-bookworm

# jemalloc: glibc malloc fragments badly under long-running multithreaded libvips work
# (libvips developer checklist, "Linux memory allocator"); jemalloc keeps RSS flat and
# returns memory to the OS. background_thread purges dirty pages without a request.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*
ENV LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
    MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000,narenas:4 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIPS_CONCURRENCY=1 \
    IMGPROXY_BIND=:8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY imgproxy_py ./imgproxy_py
RUN pip install --no-cache-dir . && useradd --system --uid 10001 imgproxy
COPY config ./config

USER imgproxy
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health').status == 200 else 1)"
CMD ["imgproxy-py", "serve"]
