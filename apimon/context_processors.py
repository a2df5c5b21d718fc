from django.conf import settings


def apimon(request):
    return {"STRIPE_EMULATOR": settings.STRIPE_EMULATOR}
