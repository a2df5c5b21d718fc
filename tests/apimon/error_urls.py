"""apimon's URLconf with its error handlers, plus a view that fails, for the 500
page's tests."""

from django.urls import path

from apimon.urls import (  # noqa: F401 - the handlers are read from this module
    handler400,
    handler403,
    handler404,
    handler500,
)
from apimon.urls import urlpatterns as apimon_urlpatterns


def broken(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("broken/", broken), *apimon_urlpatterns]
