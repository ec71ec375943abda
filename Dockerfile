# One image for every service; docker-compose picks the service with the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 app
USER app
# Overridden per service in docker-compose.yml: python -m services.<api|scheduler|connector|projector|relay|manage>
CMD ["python", "-m", "services.api"]
