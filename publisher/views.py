from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apimon.tenancy import PUBLISHERS, tenant_view


@tenant_view(PUBLISHERS)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "publisher/dashboard.html")
