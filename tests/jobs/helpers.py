from tests.conftest import gradient, image_bytes


def upload(name="photo.png", data=None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, image_bytes(gradient()) if data is None else data)


def submit(client, task="semantic", data=None, name="photo.png", **fields):
    return client.post(
        "/api/v1/jobs/", {"image": upload(name, data), "task": task, **fields}, format="multipart"
    )


def assert_error(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]
