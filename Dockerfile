# vpt-tracker: the scheduler service (`serve`) or any one-shot command.
#   docker build -t vpt-tracker .
#   docker run --rm -v vpt-data:/data vpt-tracker run nightly
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY db ./db
COPY classifiers ./classifiers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# git: `publish` commits to a clone of each list's repository; tzdata: schedule.timezone.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tzdata ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 tracker
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV VPT_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
RUN mkdir -p /data && chown tracker /data
VOLUME /data
USER tracker
WORKDIR /data
ENTRYPOINT ["vpt-tracker"]
CMD ["serve"]
