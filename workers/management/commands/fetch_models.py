from django.core.management.base import BaseCommand, CommandError

from core.repository import repository
from workers.weights import FetchError, install, weights_problem


class Command(BaseCommand):
    help = "Install each model's weight file into its folder under SEGMENT_MODELS_DIR, verified by sha256."

    def add_arguments(self, parser):
        parser.add_argument(
            "--source",
            help="folder (searched recursively) or base URL holding the files; "
            "default: each file's download URL (weights.url in its model.toml)",
        )
        parser.add_argument("--models", help="comma-separated model names (default: those not optional)")
        parser.add_argument("--all", action="store_true", help="also the optional (heavy) models")
        parser.add_argument("--force", action="store_true", help="reinstall files already present")

    def handle(self, source=None, models=None, force=False, **options):
        repo = repository()
        for folder, problem in repo.problems.items():
            self.stderr.write(self.style.WARNING(f"{folder}: skipped, its spec is broken: {problem}"))
        specs = repo.specs
        if models:
            names = [n.strip() for n in models.split(",")]
        else:
            names = [n for n, spec in specs.items() if options["all"] or not spec.weights.optional]
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise CommandError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(specs)}")

        failures = []
        for name in names:
            spec = specs[name]
            if not force and weights_problem(spec) is None:
                self.stdout.write(f"{name}: {spec.weights.file} already installed")
                continue
            try:
                where = install(spec, source, progress=options["verbosity"] > 0)
            except FetchError as exc:
                failures.append(f"{name}: {exc}")
                self.stderr.write(self.style.ERROR(f"{name}: {exc}"))
                continue
            self.stdout.write(self.style.SUCCESS(f"{name}: installed {spec.weights.file} from {where}"))
        if failures:
            raise CommandError(f"{len(failures)} model(s) not installed into {repo.folder}")
