import csv
from importlib import resources

from classifier.agencies import default_directory


def _csv(name: str) -> list[dict[str, str]]:
    text = resources.files("classifier").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def test_every_portal_body_and_catalogue_unit_has_a_profile() -> None:
    d = default_directory()
    for row in _csv("organismos_gubuy.csv"):
        assert d.profile(row["nombre"]) is not None, row["nombre"]
    for row in _csv("units.csv"):
        assert row["institucion_nombre"] in d.profiles, row["institucion_nombre"]
    assert len(_csv("organismos_gubuy.csv")) == 88


def test_profiles_are_complete_and_parents_exist() -> None:
    d = default_directory()
    for p in d.profiles.values():
        assert p.description and p.keywords, p.name
        assert not p.parent or p.parent in d.profiles, p.name


def test_hierarchy_from_units_profiles_and_heuristic() -> None:
    d = default_directory()
    dnic = "Ministerio del Interior - Dirección Nacional de Identificación Civil"
    assert d.organismo_of(dnic) == "Ministerio del Interior"
    assert d.organismo_of("Dirección General Impositiva - División Atención y Asistencia") == (
        "Ministerio de Economía y Finanzas"
    )
    assert d.organismo_of("Banco de Previsión Social") == "Banco de Previsión Social"
    assert d.organismo_of("Obras Sanitarias del Estado") == "Administración de las Obras Sanitarias del Estado"
    assert d.organismo_of("Ministerio de Salud Pública - Dirección Nueva") == "Ministerio de Salud Pública"
    assert d.organismo_of("Ente Inventado - Unidad X") == "Ente Inventado"
    assert d.organismo_of(None) is None


def test_the_nine_bodies_use_the_labelled_names() -> None:
    d = default_directory()
    for acronym, name in [
        ("BPS", "Banco de Previsión Social"),
        ("UTE", "Administración Nacional de Usinas y Trasmisiones Eléctricas"),
        ("ANTEL", "Administración Nacional de Telecomunicaciones"),
        ("OSE", "Administración de las Obras Sanitarias del Estado"),
        ("ANEP", "Administración Nacional de Educación Pública"),
        ("ASSE", "Administración de los Servicios de Salud del Estado"),
        ("INAU", "Instituto del Niño y Adolescente del Uruguay"),
        ("BROU", "Banco de la República Oriental del Uruguay"),
        ("BSE", "Banco de Seguros del Estado"),
    ]:
        assert d.canonical(acronym) == name


def test_mentions_name_the_body() -> None:
    from classifier.agencies import default_directory, mention_phrases

    phrases = mention_phrases(default_directory())
    assert phrases[("bps",)] == "Banco de Previsión Social"
    assert phrases[("ute",)] == "Administración Nacional de Usinas y Trasmisiones Eléctricas"
    assert ("dni",) not in phrases and ("ci",) not in phrases
