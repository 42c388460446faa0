# One image for every role of outdial (api, scheduler, worker, flower, migrate, simulator):
# the role is the command, e.g. `docker run outdial worker`. See docker-compose.yml.

# Build stage: compilers only here, for any dependency without a wheel for this platform.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/outdial
ENV PATH=/opt/outdial/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# Package data that links outside the package: outdial/accounts.toml -> config/accounts.toml,
# outdial/demo/leads.csv -> examples/leads.csv.
COPY config/ config/
COPY examples/leads.csv examples/leads.csv
COPY outdial/ outdial/
RUN pip install .

# Runtime stage: the installed venv and the accounts file, no compilers, not root.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/outdial/bin:$PATH \
    OUTDIAL_ACCOUNTS_FILE=/etc/outdial/accounts.toml \
    OUTDIAL_DATA_DIR=/var/lib/outdial/data \
    OUTDIAL_LOG_FORMAT=json
RUN groupadd --system --gid 10001 outdial \
 && useradd --system --uid 10001 --gid outdial --home-dir /var/lib/outdial --shell /usr/sbin/nologin outdial \
 && mkdir -p /var/lib/outdial/metrics /var/lib/outdial/data \
 && chown -R outdial:outdial /var/lib/outdial
COPY --from=build /opt/outdial /opt/outdial
COPY config/accounts.toml /etc/outdial/accounts.toml
WORKDIR /var/lib/outdial
USER outdial
EXPOSE 8000 5555 8700
ENTRYPOINT ["outdial"]
CMD ["--help"]
