from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers.catalog import MODELS, required_model_names
from workers.weights import FetchError, install, is_installed


class Command(BaseCommand):
    help = "Install model weight files into SEGMENT_MODELS_DIR, verified by sha256."

    def add_arguments(self, parser):
        parser.add_argument(
            "--source",
            help="folder (searched recursively) or base URL holding the files; "
            "default: each file's canonical download URL",
        )
        parser.add_argument("--models", help="comma-separated model names (default: the required ones)")
        parser.add_argument("--all", action="store_true", help="also the optional (heavy) models")
        parser.add_argument("--force", action="store_true", help="reinstall files already present")

    def handle(self, source=None, models=None, force=False, **options):
        if models:
            names = [n.strip() for n in models.split(",")]
        else:
            names = list(MODELS) if options["all"] else required_model_names()
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise CommandError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")

        target = settings.SEGMENT_MODELS_DIR
        failures = []
        for name in names:
            weight = MODELS[name].weights
            if not force and is_installed(weight, target):
                self.stdout.write(f"{name}: {weight.filename} already installed")
                continue
            try:
                where = install(weight, target, source, progress=options["verbosity"] > 0)
            except FetchError as exc:
                failures.append(f"{name}: {exc}")
                self.stderr.write(self.style.ERROR(f"{name}: {exc}"))
                continue
            self.stdout.write(self.style.SUCCESS(f"{name}: installed {weight.filename} from {where}"))
        if failures:
            raise CommandError(f"{len(failures)} model(s) not installed into {target}")
