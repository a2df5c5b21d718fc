from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apimon.tenancy import tenant_view


@tenant_view(public=True)
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "store/home.html")
