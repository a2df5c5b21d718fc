from django.conf import settings


def test_the_suite_runs_the_stripe_emulator_in_process():
    assert settings.STRIPE_EMULATOR_IN_PROCESS is True
    assert settings.CELERY_TASK_ALWAYS_EAGER is True
