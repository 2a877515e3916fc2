"""The proxy with a defect planted in its generation service, for Gunicorn (tests.faulty_wsgi:create()):
how is our own bug answered?"""
from app import create_app

DEFECT_MARKER = "[[planted-defect]]"


def create():
    app = create_app()
    service = app.extensions["gemini"]
    generate = service.generate

    def generate_with_defect(request, **kwargs):
        if DEFECT_MARKER in request.prompt:
            raise ZeroDivisionError("a defect planted by tests/faulty_wsgi.py")
        return generate(request, **kwargs)

    service.generate = generate_with_defect
    return app
