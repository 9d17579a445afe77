"""The pages' English: Russian text (as the templates write it) -> English."""

from __future__ import annotations

__all__ = ["EN"]

EN: dict[str, str] = {
    # navigation and frame
    "Обзор": "Overview",
    "Звонки": "Calls",
    "Настройки": "Settings",
    "Сотрудники": "Employees",
    "Аккаунт": "Account",
    "Открыть": "Open",
    "Выйти": "Sign out",
    "Отказано": "Refused",
    "Форма отправлена без действующего токена защиты (CSRF). Откройте страницу заново и "
    "повторите.": "The form was sent without a valid protection (CSRF) token. Open the page "
                  "again and retry.",
    "Этот вход не открывает этот аккаунт.": "This sign-in does not open this account.",
    "Форма была открыта для другого аккаунта: с тех пор в этой сессии выбран другой. "
    "Ничего не сохранено; откройте страницу заново.":
        "The form was opened for another account: another one has been chosen in this "
        "session since. Nothing was saved; open the page again.",
    "Тело запроса — не форма.": "The request body is not a form.",
    "Не найдено.": "Not found.",
    "К обзору": "To the overview",
    # sign-in
    "Вход": "Sign in",
    "Войдите с токеном оператора или с токеном администратора своего аккаунта.":
        "Sign in with the operator's token or your account's admin token.",
    "Этот токен не открывает ни один аккаунт.": "This token opens no account.",
    "Слишком много попыток входа. Подождите минуту.":
        "Too many sign-in attempts. Wait a minute.",
    "Форма устарела. Попробуйте ещё раз.": "The form has expired. Try again.",
    "Аккаунтов ещё нет: добавьте аккаунт командой mango-router account add.":
        "There are no accounts yet: add one with mango-router account add.",
    "Токен": "Token",
    "Войти": "Sign in",
    # settings
    "Выберите вид процесса и статус: в этом режиме создаётся процесс.":
        "Choose the program and the state: this mode creates a deal.",
    "Такого вида процесса или статуса нет в Мегаплане.":
        "Megaplan has no such program, or the state is not one of its states.",
    "Выберите сотрудника.": "Choose an employee.",
    "Такого активного сотрудника нет в Мегаплане.": "Megaplan has no such active employee.",
    "Нужен код страны ISO 3166, например RU.": "An ISO 3166 country code is needed, such as RU.",
    "Нужен часовой пояс IANA, например Europe/Moscow.":
        "An IANA time zone is needed, such as Europe/Moscow.",
    "Нужно целое число часов от 1 до 720.": "A whole number of hours from 1 to 720 is needed.",
    "Настройки интеграции": "Integration settings",
    "Ничего не делать": "Do nothing",
    "Клиента": "A client",
    "Клиента и процесс": "A client and a deal",
    "— не выбран —": "— none chosen —",
    "Вид создаваемого процесса и статус, на котором он создаётся.":
        "The program of the deal created, and the state it is created in.",
    "Процессов в копии Мегаплана пока нет: они появятся после синхронизации.":
        "The copy of Megaplan has no programs yet: they appear after the sync.",
    "Ответственный сотрудник": "Responsible employee",
    "Дополнительные настройки интеграции": "Additional integration settings",
    "Настройки сохранены и действуют на всех серверах в течение секунды.":
        "Settings saved; they are in effect on every server within a second.",
    "Настройки не сохранены: исправьте отмеченное поле. Ничего не изменилось.":
        "Settings not saved: correct the marked field. Nothing was changed.",
    "Для этого аккаунта не задан Мегаплан: создание клиентов и процессов не работает, пока его "
    "не подключить (mango-router account add … --megaplan-url).":
        "This account has no Megaplan: clients and deals are not created until it is "
        "connected (mango-router account add … --megaplan-url).",
    "Обработка входящих звонков": "Incoming calls",
    "Распределять вызовы от клиентов по ответственным сотрудникам":
        "Route calls from clients to their responsible employees",
    "Если флаг включен, то при входящем звонке приложение определит клиента по номеру "
    "звонящего и ответственного за клиента. После чего распределит звонок на данного "
    "сотрудника. Если клиентов с этим номером несколько, выбирается первый найденный; если "
    "ответственных несколько — первый из них (не заблокированный и не удаленный сотрудник); "
    "клиент, указанный ответственным, игнорируется.":
        "When on, an incoming call's client is found by the caller's number, and the call "
        "goes to the client's responsible employee. Several clients with the number: the "
        "first found is taken; several responsibles: the first of them (not blocked, not "
        "deleted); a client set as responsible is ignored.",
    "В личном кабинете MANGO OFFICE («Голосовое меню и распределение звонков», вкладка "
    "«Настройки для входящих линий») перед распределением звонка укажите звуковое приветствие "
    "длительностью не менее 5 секунд и значение «да» в параметре «ожидать окончания».":
        "In the MANGO OFFICE account («Голосовое меню и распределение звонков», tab "
        "«Настройки для входящих линий») put a greeting of at least 5 seconds before the "
        "call is distributed, with «ожидать окончания» (wait for the end) set to yes.",
    "Автоматически создавать клиента при принятых входящих звонках":
        "Create a client automatically on answered incoming calls",
    "«Клиента»: при входящем звонке от нового номера (не заведенного в Мегаплане) будет создан "
    "новый клиент; создателем и ответственным является сотрудник, первый принявший звонок; "
    "имя вида «Новый (16:30 05.03.2018, входящий вызов)». Клиент создается сразу после приема "
    "вызова. «Клиента и процесс»: также создается сделка (процесс) — будут открыты "
    "дополнительные поля.":
        "“A client”: an incoming call from a new number (not in Megaplan) creates a client; "
        "its creator and responsible is the employee who answered first; it is named like "
        "«Новый (16:30 05.03.2018, входящий вызов)». The client is created as soon as the "
        "call is answered. “A client and a deal”: a deal is created too — more fields open.",
    "Процесс при принятых входящих звонках": "Deal on answered incoming calls",
    "Автоматически создавать клиента при пропущенных входящих звонках":
        "Create a client automatically on missed incoming calls",
    "«Клиента»: при входящем и пропущенном звонке с нового номера будет создан новый клиент; "
    "создателем и ответственным является сотрудник, на которого звонок был распределен и "
    "пропущен. Клиент создается сразу после завершения вызова. «Клиента и процесс»: также "
    "создается сделка (процесс) — будут открыты дополнительные поля.":
        "“A client”: a missed incoming call from a new number creates a client; its creator "
        "and responsible is the employee the call was routed to and missed by. The client is "
        "created when the call ends. “A client and a deal”: a deal is created too — more "
        "fields open.",
    "Процесс при пропущенных входящих звонках": "Deal on missed incoming calls",
    "Действия при повторных звонках от клиентов": "Repeat calls from clients",
    "не создавать процесс для имеющегося клиента": "do not create a deal for an existing client",
    "всегда создавать процесс для имеющегося клиента":
        "always create a deal for an existing client",
    "создавать процесс, если нет открытых": "create a deal if none is open",
    "Повторный звонок всегда фиксируется в карточке клиента. Процесс при повторном звонке "
    "создаётся по настройке процесса для принятых или пропущенных звонков; менеджер процесса "
    "— сотрудник, принявший звонок, иначе первый активный ответственный клиента.":
        "A repeat call is always recorded on the client's card. A repeat call's deal uses the "
        "deal setting for answered or missed calls; its manager is the employee who "
        "answered, else the client's first active responsible.",
    "Указывать источник при входящих звонках": "Record the source of incoming calls",
    "Если у вас несколько номеров подключено к Виртуальной АТС, в карточке нового клиента в "
    "поле «Номер линии MANGO OFFICE» сохраняется номер, на который звонил клиент. Если флаг "
    "выключен, эта информация не сохраняется.":
        "With several numbers on the virtual PBX, a new client's card keeps the number the "
        "client called in the field «Номер линии MANGO OFFICE». When off, it is not kept.",
    "Обновлять ответственного при переводах входящих вызовов":
        "Update the responsible on transfers of incoming calls",
    "Если флаг включен, ответственным в автоматически созданном клиенте будет сотрудник, "
    "который последним обрабатывал входящий звонок (например, менеджер, на которого перевел "
    "оператор). Если выключен — сотрудник, который обрабатывал звонок первым.":
        "When on, the responsible of a client created automatically is the employee who "
        "handled the call last (say, the manager the operator transferred it to). When off, "
        "the employee who handled it first.",
    "Указать ответственного при пропущенных звонках в IVR":
        "Set the responsible for calls missed in the IVR",
    "Если флаг включен и клиенты при пропущенных звонках создаются, то при каждом звонке от "
    "нового клиента, пропущенном в IVR (голосовом меню), создается клиент с выбранным "
    "ответственным. Если выключен, для таких звонков клиент не создается.":
        "When on, and clients are created on missed calls, each call from a new client "
        "missed in the IVR (voice menu) creates a client with the chosen responsible. When "
        "off, no client is created for such calls.",
    "Указать ответственного при пропущенных звонках в группу":
        "Set the responsible for calls missed in a group",
    "Если флаг включен и клиенты при пропущенных звонках создаются, то при каждом звонке от "
    "нового клиента, распределенном в группу и пропущенном, создается клиент с выбранным "
    "ответственным. Если выключен — ответственным указывается первый сотрудник, на которого "
    "распределялся вызов.":
        "When on, and clients are created on missed calls, each call from a new client "
        "routed to a group and missed creates a client with the chosen responsible. When "
        "off, the responsible is the first employee the call was routed to.",
    "Обработка исходящих звонков": "Outgoing calls",
    "Автоматически создавать клиента при исходящих звонках":
        "Create a client automatically on outgoing calls",
    "Если флаг включен, то при исходящем звонке на новый номер будет создан новый клиент; "
    "создателем и ответственным является сотрудник, совершивший звонок; имя вида «Новый "
    "(16:30 05.03.2018, исходящий вызов)».":
        "When on, an outgoing call to a new number creates a client; its creator and "
        "responsible is the employee who called; it is named like «Новый (16:30 05.03.2018, "
        "исходящий вызов)».",
    "Формат телефонных номеров": "Phone number format",
    "Номер нового клиента записывается в Мегаплан в формате":
        "A new client's number is written to Megaplan as",
    "Страна номеров без кода страны": "Country of numbers written without a country code",
    "Код ISO 3166, например RU: так читаются номера, записанные без кода страны.":
        "An ISO 3166 code such as RU: numbers without a country code are read as this "
        "country's.",
    "Часовой пояс": "Time zone",
    "Для времени в именах новых клиентов и для обзора звонков по часам.":
        "For the time in new clients' names and the overview's calls per hour.",
    "Сверх настроек Мегаплана": "Beyond Megaplan's settings",
    "Пропускать занятого ответственного": "Pass over a busy responsible",
    "Если ответственный уже разговаривает, звонок идёт следующему свободному активному "
    "ответственному клиента; если свободных нет, звонок идёт по схеме АТС.":
        "When the responsible is already on a call, the call goes to the client's next free "
        "active responsible; with none free, it follows the PBX's scheme.",
    "Звонок с номера, которого нет в Мегаплане, — сотруднику, который последним с ним говорил":
        "A call from a number Megaplan does not know goes to the employee who last talked "
        "to it",
    "Если разговор был не раньше, чем (часов назад)": "If that talk was within (hours)",
    "Распределять звонки только на эти линии": "Route calls only to these lines",
    "По одному номеру в строке; пусто — звонки на все линии.":
        "One number a line; empty: calls to every line.",
    "Пробный режим": "Dry run",
    "Решения принимаются и записываются, но команды АТС не отправляются и в Мегаплан ничего "
    "не пишется.": "Decisions are made and recorded, but no command goes to the PBX and "
                   "nothing is written to Megaplan.",
    "Сохранить": "Save",
    # calls
    "Звонок": "Call",
    "← Звонки": "← Calls",
    "Распределение": "Routing",
    "Маршрутизация этот звонок не решала (исходящий, внутренний или распределение выключено).":
        "Routing did not decide this call (outgoing, internal, or routing off).",
    "распределён": "routed",
    "добавочный": "extension",
    "ответственный был занят: следующий свободный": "the responsible was busy: the next free one",
    "тот, кто говорил с номером последним": "the one who last talked to the number",
    "Задержка": "Latency",
    "мс": "ms",
    "от уведомления АТС до отправки команды": "from the PBX's notification to the command sent",
    "Ответ АТС": "The PBX's answer",
    "HTTP-статус / код результата commands/route (1000 — принято)":
        "HTTP status / result code of commands/route (1000: accepted)",
    "итог result/route": "result/route",
    "Клиент": "Client",
    "Ход звонка": "Timeline",
    "от": "from",
    "итог": "result",
    "решение": "decision",
    "на добавочный": "to extension",
    "создать клиента": "create the client",
    "создать процесс": "create a deal",
    "записать звонок": "record the call",
    "сменить ответственного": "change the responsible",
    "в очереди": "queued",
    "сделано": "done",
    "не удалось": "failed",
    "пробный режим": "dry run",
    "в Мегаплане": "in Megaplan",
    "попыток": "attempts",
    "Автоматизация ничего не делала в Мегаплане для этого звонка.":
        "The automation did nothing in Megaplan for this call.",
    "Номер": "Number",
    "Найти": "Search",
    "Все звонки": "All calls",
    "Это не номер телефона.": "That is not a phone number.",
    "Неверная ссылка на страницу.": "A bad page link.",
    "К новым звонкам": "To the newest calls",
    "Звонков с этим номером нет.": "No calls with this number.",
    "Звонков пока нет.": "No calls yet.",
    "Начало": "Started",
    "Направление": "Direction",
    "Кто звонил": "Caller",
    "Куда": "Called",
    "Итог": "Outcome",
    "Задержка, мс": "Latency, ms",
    "Мегаплан": "Megaplan",
    "входящий": "incoming",
    "исходящий": "outgoing",
    "внутренний": "internal",
    "принят": "answered",
    "пропущен": "missed",
    "идёт": "in progress",
    "пробно": "dry run",
    "← Новые": "← Newer",
    "Старше →": "Older →",
    # employees
    "Звонок распределяется на добавочный сотрудника. Добавочный берётся у пользователя АТС с "
    "тем же e-mail, что у сотрудника в Мегаплане; заданный вручную всегда важнее.":
        "A call is routed to the employee's extension. The extension comes from the PBX user "
        "with the employee's e-mail in Megaplan; one set by hand always wins.",
    "Без добавочного: {n}. Звонки их клиентов не распределяются, пока добавочный не задан.":
        "Without an extension: {n}. Their clients' calls are not routed until one is set.",
    "Добавочный сохранён.": "Extension saved.",
    "Сотрудник": "Employee",
    "Добавочный": "Extension",
    "Откуда": "From",
    "Задать вручную": "Set by hand",
    "вручную": "by hand",
    "из АТС": "from the PBX",
    "не найден в АТС": "not found in the PBX",
    "Добавочный для": "Extension for",
    "Снять ручной": "Unset",
    "Снятый ручной добавочный остаётся до следующей синхронизации, которая возьмёт добавочный "
    "из АТС.": "An unset extension stays until the next sync takes the PBX's.",
    "Добавочный — от 1 до 16 цифр.": "An extension is 1 to 16 digits.",
    "Сотрудников в копии Мегаплана пока нет: они появятся после синхронизации.":
        "The copy of Megaplan has no employees yet: they appear after the sync.",
    # overview
    "Звонков сегодня": "Calls today",
    "распределено": "routed",
    "пропущено": "missed",
    "Номеров в индексе": "Numbers in the index",
    "телефоны клиентов, по которым распределяются звонки": "clients' phones that calls are "
                                                          "routed by",
    "Очередь в Мегаплан": "Queue to Megaplan",
    "старейшее действие ждёт {s} с": "the oldest action has waited {s} s",
    "всё записано": "everything is written",
    "Синхронизация с Мегапланом": "Sync with Megaplan",
    "Мегаплан не подключён": "no Megaplan connected",
    "ещё не было": "not yet",
    "ошибка": "error",
    "в порядке": "fine",
    "последняя успешная": "last success",
    "последняя ошибка": "last error",
    "API АТС": "The PBX's API",
    "API Мегаплана": "Megaplan's API",
    "обращений ещё не было": "not contacted yet",
    "отвечает": "answers",
    "последний ответ": "last answer",
    "Звонки по часам": "Calls per hour",
    "Звонки за сегодня по часам: распределённые, нераспределённые по причинам и пропущенные":
        "Today's calls per hour: routed, not routed by reason, and missed",
    "Почему не распределены": "Why not routed",
    "звонков": "calls",
    # outcomes
    "клиент не найден": "no client",
    "нет активного ответственного": "no active responsible",
    "у ответственного нет добавочного": "the responsible has no extension",
    "ответственные заняты": "responsibles busy",
    "линия не распределяется": "a line not routed",
    "номер не распознан": "not a number",
    "повтор уведомления": "a repeated notification",
    "распределён другим сервером": "routed by another server",
    "другой сервер не ответил": "another server did not answer",
    "не успели до конца приветствия": "too late for the greeting",
    "звонок уже закончился": "the call had ended",
    "ошибка поиска": "lookup error",
    "индекс ещё не загружен": "index not loaded yet",
    "АТС не приняла команду": "the PBX refused the command",
    "без решения (исходящие, внутренние)": "not decided (outgoing, internal)",
    "прочее": "other",
    "По одному номеру телефона в строке, не больше 100 строк.":
        "One phone number a line, at most 100 lines.",
    "Не номер телефона: ": "Not a phone number: ",
}
