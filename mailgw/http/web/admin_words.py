"""The admin pages' words and the job page's media words, in en, fr and ru (merged into
mailgw.http.web.i18n.WORDS: the templates read them as `t.key` like every other word)."""

from __future__ import annotations

# key: (en, fr, ru)
_WORDS: dict[str, tuple[str, str, str]] = {
    "nav_admin": ("Admin", "Administration", "Администрирование"),
    "adm_accounts": ("Accounts", "Comptes", "Учётные записи"),
    "adm_queue": ("Queue", "File d'attente", "Очередь"),
    "adm_outbox": ("Dead mails", "Mails abandonnés", "Неотправленные письма"),
    "adm_audit": ("Audit", "Journal", "Журнал"),
    "adm_create": ("Create an account", "Créer un compte", "Создать учётную запись"),
    "adm_gateway_password": ("Gateway password (the one in the Subject)",
                             "Mot de passe de passerelle (celui de l'objet)",
                             "Пароль шлюза (тот, что в теме письма)"),
    "adm_region": ("Region (ISO code, e.g. FR)", "Région (code ISO, ex. FR)",
                   "Регион (код ISO, например RU)"),
    "adm_lang": ("Language", "Langue", "Язык"),
    "adm_tz": ("Time zone", "Fuseau horaire", "Часовой пояс"),
    "adm_credits": ("Credits", "Crédits", "Кредиты"),
    "adm_credits_help": ("A number, +N or -N to add or take, or “unlimited”.",
                         "Un nombre, +N ou -N pour ajouter ou retirer, ou « unlimited ».",
                         "Число, +N или -N, чтобы добавить или списать, или «unlimited»."),
    "adm_unlimited": ("unlimited", "illimités", "без ограничений"),
    "adm_create_btn": ("Create", "Créer", "Создать"),
    "adm_web": ("Web password", "Mot de passe web", "Пароль для входа"),
    "adm_web_set": ("set", "défini", "задан"),
    "adm_web_unset": ("not set", "non défini", "не задан"),
    "adm_status": ("Status", "Statut", "Статус"),
    "adm_active": ("active", "actif", "активна"),
    "adm_disabled": ("disabled", "désactivé", "отключена"),
    "adm_operator": ("operator", "opérateur", "оператор"),
    "adm_invite": ("Send an invitation", "Envoyer une invitation", "Отправить приглашение"),
    "adm_invite_help": ("A mail with a one-time link to set the web password, valid 7 days.",
                        "Un mail avec un lien à usage unique pour choisir le mot de passe "
                        "web, valable 7 jours.",
                        "Письмо с одноразовой ссылкой для задания пароля входа, действует "
                        "7 дней."),
    "adm_set_credits": ("Change the credits", "Modifier les crédits", "Изменить кредиты"),
    "adm_limits": ("Limits", "Limites", "Ограничения"),
    "adm_window": ("Sending window (e.g. 08:00-20:00 Mon-Sat, or none)",
                   "Plage d'envoi (ex. 08:00-20:00 Mon-Sat, ou none)",
                   "Окно отправки (например 08:00-20:00 Mon-Sat или none)"),
    "adm_retry": ("Retry policy (e.g. busy=2m,max_attempts=3, or default)",
                  "Politique de relance (ex. busy=2m,max_attempts=3, ou default)",
                  "Политика повторов (например busy=2m,max_attempts=3 или default)"),
    "adm_disable": ("Disable the account", "Désactiver le compte",
                    "Отключить учётную запись"),
    "adm_disable_help": ("Its mail is refused (82), its API tokens and web sessions stop. "
                         "Jobs already accepted still go out.",
                         "Ses mails sont refusés (82), ses jetons d'API et ses sessions web "
                         "cessent. Les envois déjà acceptés partent quand même.",
                         "Её письма отклоняются (82), API-токены и сеансы перестают "
                         "действовать. Уже принятые задания всё равно уйдут."),
    "adm_enable": ("Enable the account", "Réactiver le compte", "Включить учётную запись"),
    "adm_refused": ("Refused: {why}", "Refusé : {why}", "Отклонено: {why}"),
    "adm_back": ("Back to the accounts", "Retour aux comptes", "К учётным записям"),
    "adm_id": ("Id", "N°", "№"),
    "adm_created": ("Created", "Créé le", "Создана"),
    "done_created": ("Account created.", "Compte créé.", "Учётная запись создана."),
    "done_invited": ("Invitation queued.", "Invitation mise en file.",
                     "Приглашение поставлено в очередь."),
    "done_credits": ("Credits changed.", "Crédits modifiés.", "Кредиты изменены."),
    "done_limits": ("Limits saved.", "Limites enregistrées.", "Ограничения сохранены."),
    "done_disabled": ("Account disabled.", "Compte désactivé.", "Учётная запись отключена."),
    "done_enabled": ("Account enabled.", "Compte réactivé.", "Учётная запись включена."),
    "done_retried": ("Mail queued again.", "Mail remis en file.",
                     "Письмо снова в очереди."),
    "done_dropped": ("Mail dropped.", "Mail supprimé.", "Письмо удалено."),
    "o_gone": ("This mail is not dead any more (sent, retried or dropped).",
               "Ce mail n'est plus abandonné (envoyé, relancé ou supprimé).",
               "Это письмо уже не в списке (отправлено, повторено или удалено)."),
    "q_title": ("The queue now", "La file maintenant", "Очередь сейчас"),
    "q_deliveries": ("Numbers by state", "Numéros par état", "Номера по статусам"),
    "q_jobs": ("Jobs by state", "Envois par état", "Задания по статусам"),
    "q_count": ("Count", "Nombre", "Количество"),
    "q_oldest_due": ("Oldest due, not taken yet", "Le plus ancien dû, pas encore pris",
                     "Самое старое ожидающее"),
    "q_next_due": ("Next deferred or retry", "Prochain différé ou relance",
                   "Следующее отложенное или повтор"),
    "q_none": ("none", "aucun", "нет"),
    "q_lines": ("Lines busy per driver", "Lignes occupées par pilote",
                "Занятые линии по драйверам"),
    "q_driver": ("Driver", "Pilote", "Драйвер"),
    "q_node": ("Node", "Nœud", "Узел"),
    "q_busy": ("Calls in flight", "Appels en cours", "Звонков идёт"),
    "q_lines_col": ("Lines per node", "Lignes par nœud", "Линий на узел"),
    "q_outbox_unsent": ("Outbox mails waiting", "Mails en attente d'envoi",
                        "Писем ждут отправки"),
    "q_outbox_dead": ("Dead outbox mails", "Mails abandonnés", "Неотправленных писем"),
    "q_taken": ("As of {when}", "État à {when}", "По состоянию на {when}"),
    "job_active": ("Active", "En cours", "Активно"),
    "job_done": ("Done", "Terminé", "Завершено"),
    "o_help": ("Mails (acknowledgements, notices, summaries, invitations, webhook calls) the "
               "smarthost refused until mailgw gave up. Retry sends one again now; drop "
               "deletes it.",
               "Mails (accusés, avis, bilans, invitations, appels de webhook) que le relais a "
               "refusés jusqu'à l'abandon. Relancer le renvoie maintenant ; supprimer "
               "l'efface.",
               "Письма (подтверждения, уведомления, сводки, приглашения, вызовы вебхука), "
               "которые релей отклонял, пока mailgw не сдался. «Повторить» отправит снова, "
               "«Удалить» сотрёт."),
    "o_kind": ("Kind", "Type", "Вид"),
    "o_to": ("To", "À", "Кому"),
    "o_tries": ("Tries", "Essais", "Попыток"),
    "o_dead_at": ("Given up", "Abandonné le", "Оставлено"),
    "o_error": ("Last error", "Dernière erreur", "Последняя ошибка"),
    "o_retry": ("Retry", "Relancer", "Повторить"),
    "o_drop": ("Drop", "Supprimer", "Удалить"),
    "o_none": ("No dead mail.", "Aucun mail abandonné.", "Неотправленных писем нет."),
    "a_when": ("When", "Quand", "Когда"),
    "a_who": ("Who", "Qui", "Кто"),
    "a_action": ("Action", "Action", "Действие"),
    "a_target": ("Target", "Cible", "Объект"),
    "a_detail": ("Detail", "Détail", "Подробности"),
    "a_none": ("No action yet.", "Aucune action pour l'instant.", "Действий пока нет."),
    "act_account_create": ("account created", "compte créé", "учётная запись создана"),
    "act_invite": ("invitation sent", "invitation envoyée", "приглашение отправлено"),
    "act_credits": ("credits changed", "crédits modifiés", "кредиты изменены"),
    "act_limits": ("limits changed", "limites modifiées", "ограничения изменены"),
    "act_account_disable": ("account disabled", "compte désactivé",
                            "учётная запись отключена"),
    "act_account_enable": ("account enabled", "compte réactivé", "учётная запись включена"),
    "act_admin_on": ("made an operator", "devenu opérateur", "назначен оператором"),
    "act_admin_off": ("no longer an operator", "n'est plus opérateur",
                      "больше не оператор"),
    "act_outbox_retry": ("dead mail retried", "mail abandonné relancé",
                         "неотправленное письмо повторено"),
    "act_outbox_drop": ("dead mail dropped", "mail abandonné supprimé",
                        "неотправленное письмо удалено"),
    "job_pages_title": ("The fax as sent", "Le fax tel qu'envoyé", "Факс в отправляемом виде"),
    "job_pages_help": ("The document's pages as rendered for the fax (without the cover page "
                       "or header line, which differ per number).",
                       "Les pages du document telles que rendues pour le fax (sans la page "
                       "de garde ni la ligne d'en-tête, propres à chaque numéro).",
                       "Страницы документа в том виде, как они отрисованы для факса (без "
                       "титульной страницы и строки заголовка, они свои для каждого номера)."),
    "job_page_alt": ("Page {n} of the fax", "Page {n} du fax", "Страница {n} факса"),
    "job_more_pages": ("{n} more pages are not shown.", "{n} pages de plus ne sont pas "
                       "montrées.", "Ещё страниц не показано: {n}."),
    "job_sound": ("The message", "Le message", "Сообщение"),
    "job_no_audio": ("Your browser cannot play this sound: download it.",
                     "Votre navigateur ne sait pas lire ce son : téléchargez-le.",
                     "Браузер не может воспроизвести звук: скачайте его."),
}

LANG_INDEX = {"en": 0, "fr": 1, "ru": 2}


def words(lang: str) -> dict[str, str]:
    i = LANG_INDEX.get(lang, 0)
    return {key: texts[i] for key, texts in _WORDS.items()}
