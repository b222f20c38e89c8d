# syntax=docker/dockerfile:1
# One image for every process of the service; the command picks the role (docker-compose.yml).
#   docker build --target cpu -t segment:cpu .   web, light and heavy workers on CPU, io, beat
#   docker build --target gpu -t segment:gpu .   the GPU worker: TensorFlow and ONNX Runtime on CUDA
# Weights are never baked in: the model folders' specs are (in /models, which a new named
# volume takes from the image), and `manage.py fetch_models` puts the weights beside them.

FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_ROOT=/data/media \
    SEGMENT_MODELS_DIR=/models \
    STATIC_ROOT=/app/staticfiles
WORKDIR /app
RUN useradd --create-home --uid 1000 app \
    && mkdir -p /data/media /models \
    && chown app:app /data/media /models
COPY requirements.txt .
RUN pip install -r requirements.txt

FROM base AS cpu
COPY requirements-heavy.txt requirements-heavy-nodeps.txt ./
RUN pip install -r requirements-heavy.txt \
    && pip install --no-deps -r requirements-heavy-nodeps.txt
COPY . .
RUN cp -r models/. /models/ && chown -R app:app /models
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0
USER app
EXPOSE 8000
CMD ["gunicorn", "segsite.wsgi", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "8", "--no-control-socket"]

# TensorFlow's CUDA build takes its CUDA and cuDNN libraries from pip (the `and-cuda`
# extra), and ONNX Runtime's GPU build (the same version as the CPU pin) uses them too; the
# host needs only the NVIDIA driver and the container toolkit.
FROM base AS gpu
COPY requirements-heavy.txt requirements-heavy-nodeps.txt ./
RUN sed 's/^tensorflow-cpu==/tensorflow[and-cuda]==/' requirements-heavy.txt > /tmp/requirements-gpu.txt \
    && sed -n 's/^onnxruntime==/onnxruntime-gpu==/p' requirements.txt >> /tmp/requirements-gpu.txt \
    && pip uninstall -y onnxruntime \
    && pip install -r /tmp/requirements-gpu.txt \
    && pip install --no-deps -r requirements-heavy-nodeps.txt
COPY . .
RUN cp -r models/. /models/ && chown -R app:app /models
USER app
# Jobs on threads, each model's photos batched (BATCH_MAX, BATCH_WAIT_MS): docker-compose.yml.
CMD ["celery", "-A", "segsite", "worker", "--queues", "deeplabv3plus_xception_pascal,mask_rcnn_coco", "--pool", "threads", "--concurrency", "12"]
