"""The web space's words in fr, en and ru (one template set reads them as `t.key`), and the
language of a page: the account's, else the browser's Accept-Language, else English."""

from __future__ import annotations

from mailgw.http.web import admin_words, words_library, words_settings
from mailgw.vocab import LANGS

_KEYS = (
    "app", "nav_sent", "nav_security", "logout", "logout_all", "login_title", "email",
    "password", "sign_in", "login_failed", "login_busy", "totp_title", "totp_code", "verify",
    "totp_failed", "invite_title", "invite_help", "new_password", "confirm_password", "save",
    "mismatch", "invite_invalid", "password_set", "too_short", "too_long", "same_as_gateway",
    "sent_title", "in_progress", "delivered_all", "delivered_none", "partial", "state",
    "channel", "any", "fax", "voice", "date_from", "date_to", "ref", "number", "text",
    "filter", "reset", "export", "job", "created", "recipients", "comment", "pages",
    "none_found", "page_of", "prev", "next", "total", "bad_filter", "job_title", "deferred_to",
    "document", "csid", "first_call", "finished", "attempts", "cancel", "retry", "report",
    "cancelled_msg", "retried_msg", "retry_refused", "nothing_to_retry", "back", "scheduled",
    "queued", "sending", "delivered", "failed", "cancelled", "expired", "sec_title",
    "totp_off_text", "totp_on_text", "totp_start", "totp_secret_help", "key", "code",
    "totp_confirm", "totp_disable", "recovery_title", "recovery_help", "sessions",
    "logout_all_help", "not_found", "forbidden", "signed_out_all", "totp_now_on",
    "totp_now_off", "skip", "filters", "actions", "open_link", "account")

WORDS: dict[str, dict[str, str]] = {
    "en": dict(zip(_KEYS, (
        "Web space", "Sent", "Security", "Log out", "Log out everywhere", "Sign in",
        "Account address", "Web password", "Sign in", "Wrong address or password.",
        "Too many attempts from your network: wait a minute and try again.",
        "Second factor", "Code from your app, or a recovery code", "Verify", "Wrong code.",
        "Set your web password", "At least 10 characters, and not your gateway password.",
        "New web password", "The same again", "Save", "The two passwords differ.",
        "This link is not valid any more: ask your operator for a new invitation.",
        "Your web password is set: sign in.", "At least 10 characters, please.",
        "At most 200 characters, please.",
        "This is your gateway password: choose another one for the web space.",
        "Sent", "In progress", "Delivered to all", "Delivered to none", "Partly delivered",
        "State", "Channel", "Any", "Fax", "Voice", "From", "To", "Ref", "Number",
        "Comment contains", "Filter", "Reset", "Export these jobs (CSV)", "Job", "Submitted",
        "Recipients", "Comment", "Pages", "No job matches.", "Page {page} of {pages}",
        "Previous", "Next", "{n} jobs", "A filter was not understood and is ignored: {what}",
        "Job {id}", "Deferred to", "Document", "CSID", "First call", "Finished", "Attempts",
        "Cancel what has not gone out", "Retry the failed numbers",
        "Download the report (CSV)", "Cancelled: {n}; calls asked to stop: {m}.",
        "Queued again: {n}.", "Cannot retry: {why}", "Nothing to retry.", "Back to Sent",
        "Deferred", "Waiting", "Sending", "Delivered", "Not delivered", "Cancelled", "Expired",
        "Security", "The second factor is off.",
        "The second factor is on. Recovery codes left: {n}.",
        "Turn on the second factor (TOTP)",
        "Add this key to your authenticator app (or open the link on your phone), then type "
        "the 6-digit code it shows.", "Key", "Code", "Turn on",
        "Turn off the second factor", "Recovery codes",
        "Keep these codes somewhere safe: each one signs you in once instead of a code. "
        "They are shown only now.", "Sessions",
        "End every session of this account, on every device, this one included.",
        "Not found", "The form expired or did not come from this site: reload the page and "
        "try again.", "Every session has ended.", "The second factor is on.",
        "The second factor is off.", "Skip to the content", "Filters", "Actions",
        "Set-up link for a phone", "Account"), strict=True)),
    "fr": dict(zip(_KEYS, (
        "Espace web", "Envoyés", "Sécurité", "Se déconnecter", "Se déconnecter partout",
        "Connexion", "Adresse du compte", "Mot de passe web", "Se connecter",
        "Adresse ou mot de passe incorrect.",
        "Trop d'essais depuis votre réseau : attendez une minute et recommencez.",
        "Second facteur", "Code de votre application, ou code de secours", "Vérifier",
        "Code incorrect.", "Choisissez votre mot de passe web",
        "Au moins 10 caractères, et pas votre mot de passe de passerelle.",
        "Nouveau mot de passe web", "Le même, encore une fois", "Enregistrer",
        "Les deux mots de passe diffèrent.",
        "Ce lien n'est plus valable : demandez une nouvelle invitation à votre opérateur.",
        "Votre mot de passe web est enregistré : connectez-vous.",
        "Au moins 10 caractères, s'il vous plaît.", "Au plus 200 caractères, s'il vous plaît.",
        "C'est votre mot de passe de passerelle : choisissez-en un autre pour l'espace web.",
        "Envoyés", "En cours", "Remis à tous", "Remis à aucun", "Partiellement remis",
        "État", "Canal", "Tous", "Fax", "Vocal", "Du", "Au", "Réf.", "Numéro",
        "Le commentaire contient", "Filtrer", "Effacer", "Exporter ces envois (CSV)", "Envoi",
        "Déposé le", "Destinataires", "Commentaire", "Pages", "Aucun envoi ne correspond.",
        "Page {page} sur {pages}", "Précédente", "Suivante", "{n} envois",
        "Un filtre n'a pas été compris et est ignoré : {what}", "Envoi {id}", "Différé au",
        "Document", "CSID", "Premier appel", "Terminé", "Tentatives",
        "Annuler ce qui n'est pas parti", "Relancer les numéros en échec",
        "Télécharger le rapport (CSV)", "Annulés : {n} ; appels priés de s'arrêter : {m}.",
        "Remis en file : {n}.", "Relance impossible : {why}", "Rien à relancer.",
        "Retour aux envois", "Différé", "En attente", "En cours d'envoi", "Remis", "Non remis",
        "Annulé", "Expiré", "Sécurité", "Le second facteur est désactivé.",
        "Le second facteur est activé. Codes de secours restants : {n}.",
        "Activer le second facteur (TOTP)",
        "Ajoutez cette clé à votre application d'authentification (ou ouvrez le lien sur "
        "votre téléphone), puis saisissez le code à 6 chiffres qu'elle affiche.", "Clé",
        "Code", "Activer", "Désactiver le second facteur", "Codes de secours",
        "Gardez ces codes en lieu sûr : chacun remplace une fois un code. Ils ne sont "
        "affichés que maintenant.", "Sessions",
        "Fermer toutes les sessions de ce compte, sur tous les appareils, celle-ci comprise.",
        "Introuvable", "Le formulaire a expiré ou ne vient pas de ce site : rechargez la page "
        "et recommencez.", "Toutes les sessions sont fermées.",
        "Le second facteur est activé.", "Le second facteur est désactivé.",
        "Aller au contenu", "Filtres", "Actions", "Lien de configuration pour un téléphone",
        "Compte"), strict=True)),
    "ru": dict(zip(_KEYS, (
        "Личный кабинет", "Отправленные", "Безопасность", "Выйти",
        "Выйти на всех устройствах", "Вход", "Адрес учётной записи", "Пароль для входа",
        "Войти", "Неверный адрес или пароль.",
        "Слишком много попыток из вашей сети: подождите минуту и попробуйте снова.",
        "Второй фактор", "Код из приложения или резервный код", "Подтвердить",
        "Неверный код.", "Задайте пароль для входа",
        "Не меньше 10 символов и не пароль шлюза.", "Новый пароль для входа",
        "Ещё раз то же самое", "Сохранить", "Пароли не совпадают.",
        "Ссылка больше не действует: попросите у оператора новое приглашение.",
        "Пароль для входа задан: войдите.", "Нужно не меньше 10 символов.",
        "Нужно не больше 200 символов.",
        "Это пароль шлюза: выберите для личного кабинета другой.",
        "Отправленные", "В процессе", "Доставлено всем", "Не доставлено никому",
        "Доставлено частично", "Статус", "Канал", "Все", "Факс", "Голос", "С", "По",
        "Референс", "Номер", "Комментарий содержит", "Найти", "Сбросить",
        "Выгрузить эти задания (CSV)", "Задание", "Создано", "Получатели", "Комментарий",
        "Страницы", "Ничего не найдено.", "Страница {page} из {pages}", "Назад", "Далее",
        "Заданий: {n}", "Фильтр не распознан и не применён: {what}", "Задание {id}",
        "Отложено до", "Документ", "CSID", "Первый звонок", "Завершено", "Попытки",
        "Отменить то, что ещё не ушло", "Повторить неудачные номера",
        "Скачать отчёт (CSV)", "Отменено: {n}; звонков попросили прерваться: {m}.",
        "Снова в очереди: {n}.", "Повтор невозможен: {why}", "Нечего повторять.",
        "К отправленным", "Отложено", "В очереди", "Отправляется", "Доставлено",
        "Не доставлено", "Отменено", "Просрочено", "Безопасность", "Второй фактор выключен.",
        "Второй фактор включён. Осталось резервных кодов: {n}.",
        "Включить второй фактор (TOTP)",
        "Добавьте этот ключ в приложение-аутентификатор (или откройте ссылку на телефоне) и "
        "введите 6-значный код, который оно покажет.", "Ключ", "Код", "Включить",
        "Выключить второй фактор", "Резервные коды",
        "Сохраните эти коды в надёжном месте: каждый один раз заменяет код из приложения. "
        "Они показываются только сейчас.", "Сеансы",
        "Завершить все сеансы этой учётной записи на всех устройствах, включая этот.",
        "Не найдено", "Форма устарела или отправлена не с этого сайта: обновите страницу и "
        "попробуйте снова.", "Все сеансы завершены.", "Второй фактор включён.",
        "Второй фактор выключен.", "Перейти к содержимому", "Фильтры", "Действия",
        "Ссылка для настройки на телефоне", "Учётная запись"), strict=True)),
}

for _lang, _words in WORDS.items():  # the admin pages' and the job media's words
    _admin = admin_words.words(_lang)
    assert not set(_admin) & set(_words), "a key is defined twice"
    _words.update(_admin)

for _more in (words_settings.WORDS, words_library.WORDS):  # the other pages' words
    for _lang, _words in _more.items():
        assert not set(_words) & set(WORDS[_lang]), "a key is defined twice"
        WORDS[_lang].update(_words)


def words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["en"])


def from_header(accept_language: str | None) -> str:
    """The first of fr, en, ru the browser asks for (by its q-values); else English."""
    best, best_q = "en", -1.0
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        q -= i * 1e-6  # the earlier wins a tie
        if lang in LANGS and q > best_q:
            best, best_q = lang, q
    return best
