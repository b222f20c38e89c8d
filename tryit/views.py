from django.http import JsonResponse
from django.shortcuts import render

# The page keeps an API token in the browser's storage, so no script but our own may run
# on it (an injected one could read the token). Images are allowed from anywhere: with
# MEDIA_DOWNLOADS=redirect a result URL redirects to the bucket's presigned URL. No form
# may be sent by the browser itself: without the script, signing in would put the token
# in a URL (GET /?token=...), and so in the history and the access log.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src * data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def page(request):
    """The try page: plain HTML; tryit/static/tryit/try.js does the rest against /api/v1/."""
    if request.method not in ("GET", "HEAD"):
        # In the API's one error shape, as every other path of the site answers.
        error = {"code": "method_not_allowed", "message": f'Method "{request.method}" not allowed.'}
        return JsonResponse({"error": error}, status=405, headers={"Allow": "GET, HEAD"})
    response = render(request, "tryit/index.html")
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
