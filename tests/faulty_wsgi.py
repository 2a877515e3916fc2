"""The proxy with a defect planted in its generation service, for Gunicorn: how is our own bug answered?"""
from app import create_app

DEFECT_MARKER = "[[planted-defect]]"

app = create_app()
_service = app.extensions["gemini"]
_generate = _service.generate


def _generate_with_defect(request, **kwargs):
    if DEFECT_MARKER in request.prompt:
        raise ZeroDivisionError("a defect planted by tests/faulty_wsgi.py")
    return _generate(request, **kwargs)


_service.generate = _generate_with_defect
