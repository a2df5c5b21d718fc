from django.http import HttpResponse
from django.urls import include, path


def no_content(request):
    """The baseline: a bare Django view behind apimon's full middleware stack."""
    return HttpResponse(status=204)


urlpatterns = [path("bench/204", no_content), path("", include("apimon.urls"))]
