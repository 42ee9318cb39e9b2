from classifier.features import stemmed
from classifier.normalize import basic_normalize, fold_accents, normalize


def test_accents_case_and_enye_are_folded() -> None:
    assert fold_accents("Cédula ÑANDÚ") == "cedula nandu"


def test_chat_abbreviations_are_expanded() -> None:
    assert basic_normalize("q hago xq no tmb cdo") == "que hago porque no tambien cuando"
    assert "cedula identidad" in basic_normalize("perdí la CI")


def test_handles_hashtags_urls_and_repeats() -> None:
    out = basic_normalize("@BPSUruguay holaaaa #HistoriaLaboral https://bps.gub.uy/x?y=1 mail: a.b@c.uy 12345678")
    assert out.split()[:3] == ["bps", "uruguay", "hola"]
    assert "historia laboral" in out
    assert "urlweb" in out and "correoelectronico" in out and "nnn" in out
    assert "https" not in out and "12345678" not in out


def test_lexicon_appends_canonical_terms_and_department() -> None:
    out = normalize("quiero sacar la libreta en Piriápolis")
    assert out.startswith("quiero sacar la libreta en piriapolis")
    assert "licencia conducir" in out
    assert "dptomaldonado" in out


def test_longest_phrase_wins() -> None:
    assert "dptocanelones" in normalize("vivo en san jose de carrasco")
    assert "dptosanjose" not in normalize("vivo en san jose de carrasco")


def test_stemming_unifies_inflections_and_drops_stopwords() -> None:
    assert stemmed("renovacion") == stemmed("renovar")
    assert stemmed("hola quiero renovar") == stemmed("renovar")


def test_lexicon_verbs_match_their_conjugated_forms_nouns_only_exactly() -> None:
    # "alquilar" is a lexicon key: its conjugations share the Snowball stem and get the same expansion
    for text in ("alquilamos un local", "alquilé hace un año", "quiero alquilar"):
        assert "arrendamiento" in normalize(text), text
    # noun keys match exactly only: "localidad" has the stem of the key "local" but is not a business premises
    assert "establecimiento" not in normalize("la localidad")
    assert "establecimiento" in normalize("el local")
