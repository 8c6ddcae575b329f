// The words of the staff pages, Simplified Chinese first, English on the switch (`?lang=en`).

enum PageLanguage: String, Sendable {
    case zh, en

    var htmlTag: String { self == .zh ? "zh-CN" : "en" }
    var other: PageLanguage { self == .zh ? .en : .zh }

    var texts: [String: String] { self == .zh ? PageTexts.zh : PageTexts.en }
}

enum PageTexts {
    static let zh: [String: String] = [
        "brand": "门诊", "node": "节点", "otherLanguage": "English", "signOut": "退出登录", "footer": "ClinicMesh 门诊系统 · 每个科室一个节点",
        "signInTitle": "员工登录", "staffNumber": "工号", "password": "密码", "signIn": "登录",
        "homeTitle": "工作台", "departments": "科室", "whatYouCanDo": "可进行的操作",
        "passwordTitle": "修改密码", "mustChange": "管理员重置了您的密码：请先设置新密码再继续。", "currentPassword": "当前密码", "newPassword": "新密码",
        "passwordRule": "密码至少 10 个字符，不能与工号相同。", "save": "保存",
        "scheduleTitle": "我的出诊", "date": "日期", "halfDay": "时段", "capacity": "号源数", "status": "状态", "noSessions": "暂无出诊安排。",
        "accountsTitle": "员工账户", "name": "姓名", "rolesLabel": "角色", "disable": "停用", "addAccount": "新建账户",
        "departmentsHint": "科室代码（多个用逗号分隔，如 neike,waike）", "initialPassword": "初始密码", "mustChangeNote": "首次登录须修改。", "add": "新建",
        "auditTitle": "审计日志", "patientKey": "患者标识", "action": "操作", "from": "起", "to": "止", "filter": "筛选", "exportCSV": "导出 CSV",
        "auditShown": "按时间倒序，每页 100 条；一次导出最多 200,000 条，更长的时段请按日期分段导出。", "older": "更早的记录", "time": "时间", "resource": "对象", "outcome": "结果",
        "refusedTitle": "无法完成", "backHome": "返回工作台",
        "patientsTitle": "患者查询", "residentID": "身份证号", "search": "查询", "patientTitle": "患者信息", "mobile": "手机",
        "appointmentsTitle": "预约与就诊", "practitioner": "医生", "noAppointments": "暂无预约。", "male": "男", "female": "女",
        "breakGlassReason": "紧急查看理由", "breakGlassHint": "至少 10 个字；此次查看将记入审计，由审计员复核，8 小时内有效。", "breakGlass": "紧急查看",
        "openedByBreakGlass": "本次为紧急查看，理由：", "detail": "说明", "resetPassword": "重置密码（下次登录须修改；两步验证随之关闭）", "breakGlassOnly": "只看紧急查看（破窗）",
        "morning": "上午", "afternoon": "下午", "active": "在用", "disabled": "已停用",
        "twoStepTitle": "两步验证", "twoStepCode": "动态验证码", "twoStepCodeHint": "（开启两步验证的账户填写）",
        "twoStepOn": "两步验证已开启：登录时需填写验证器中的 6 位动态验证码。", "twoStepTurnOff": "关闭两步验证",
        "twoStepOff": "两步验证未开启。开启后，登录除密码外还需手机验证器（如 Google Authenticator、Microsoft Authenticator）中的 6 位动态验证码。",
        "twoStepSetup": "在验证器中添加账户，手动输入以下密钥（基于时间，6 位，30 秒）：", "twoStepURL": "或打开此地址：",
        "twoStepTurnOn": "开启两步验证", "on": "已开启", "off": "未开启",
        "evening": "晚间", "rotaTitle": "排班", "rotaTemplates": "每周出诊模板", "rotaNoTemplates": "尚无出诊模板，请在下方添加。",
        "rotaAddLine": "添加或替换一行模板（同一医生、星期、时段只有一行）", "weekday": "星期", "room": "诊室", "start": "开始时间",
        "startHint": "（可空，默认上午 08:00、下午 13:30、晚间 18:00）", "minutesPerSlot": "每号分钟数", "walkInReserve": "现场号预留",
        "slots": "号源/现场", "delete": "删除", "rotaGrid": "排班表", "rotaNew": "待发布", "rotaPublished": "已发布",
        "rotaConflicts": "冲突（须先解决才能发布）", "rotaPublish": "发布这几周的排班", "rotaNothingNew": "这几周没有待发布的出诊。",
        "rotaShow": "显示", "weeks": "周数", "previousWeeks": "上几周", "nextWeeks": "下几周", "department": "科室", "doctorTime": "时间",
        "rotaPublishHint": "发布后，每次出诊的号源按放号规则开放（默认就诊日前 7 天 15:00），患者即可预约。",
        "rotaAddSession": "加诊（模板之外的一次出诊，如就诊高峰日，立即发布）", "rotaAddSessionButton": "加诊并发布",
    ]
    static let en: [String: String] = [
        "brand": "Outpatients", "node": "Node", "otherLanguage": "中文", "signOut": "Sign out", "footer": "ClinicMesh outpatient system · one node per department",
        "signInTitle": "Staff sign-in", "staffNumber": "Staff number", "password": "Password", "signIn": "Sign in",
        "homeTitle": "Home", "departments": "Departments", "whatYouCanDo": "What you can do",
        "passwordTitle": "Change password", "mustChange": "An administrator reset your password: set a new one before you go on.", "currentPassword": "Current password",
        "newPassword": "New password", "passwordRule": "At least 10 characters, not the staff number.", "save": "Save",
        "scheduleTitle": "My clinic sessions", "date": "Date", "halfDay": "Half-day", "capacity": "Slots", "status": "Status", "noSessions": "No clinic sessions.",
        "accountsTitle": "Staff accounts", "name": "Name", "rolesLabel": "Roles", "disable": "Disable", "addAccount": "New account",
        "departmentsHint": "Department codes (comma-separated, such as neike,waike)", "initialPassword": "Initial password", "mustChangeNote": "To be changed at first sign-in.",
        "add": "Create",
        "auditTitle": "Audit trail", "patientKey": "Patient key", "action": "Action", "from": "From", "to": "To", "filter": "Filter", "exportCSV": "Export CSV",
        "auditShown": "Newest first, 100 a page; an export holds at most 200,000 events: export a longer span in parts, by date.", "older": "Older events", "time": "Time", "resource": "Resource", "outcome": "Outcome",
        "refusedTitle": "Could not be done", "backHome": "Back to home",
        "patientsTitle": "Find a patient", "residentID": "Resident ID", "search": "Search", "patientTitle": "Patient", "mobile": "Mobile",
        "appointmentsTitle": "Appointments and visits", "practitioner": "Doctor", "noAppointments": "No appointments.", "male": "Male", "female": "Female",
        "breakGlassReason": "Reason for break-glass access", "breakGlassHint": "At least 10 characters; this look is audited, reviewed by the auditor, and lasts 8 hours.",
        "breakGlass": "Break glass", "openedByBreakGlass": "Opened by break-glass; reason: ", "detail": "Detail", "resetPassword": "Reset password (to be changed at next sign-in; turns two-step sign-in off)", "breakGlassOnly": "Break-glass only",
        "morning": "Morning", "afternoon": "Afternoon", "active": "Active", "disabled": "Disabled",
        "twoStepTitle": "Two-step sign-in", "twoStepCode": "Two-step code", "twoStepCodeHint": "(for accounts with two-step sign-in)",
        "twoStepOn": "Two-step sign-in is on: signing in needs the 6-digit code from your authenticator app.", "twoStepTurnOff": "Turn two-step sign-in off",
        "twoStepOff": "Two-step sign-in is off. Once on, signing in needs, besides the password, the 6-digit code from an authenticator app on your phone (such as Google or Microsoft Authenticator).",
        "twoStepSetup": "Add an account in the app and type this key by hand (time-based, 6 digits, 30 s):", "twoStepURL": "Or open this address:",
        "twoStepTurnOn": "Turn two-step sign-in on", "on": "On", "off": "Off",
        "evening": "Evening", "rotaTitle": "Rota", "rotaTemplates": "Weekly clinic templates", "rotaNoTemplates": "No template lines yet; add one below.",
        "rotaAddLine": "Add or replace a template line (one line per doctor, weekday and half-day)", "weekday": "Weekday", "room": "Room", "start": "Start",
        "startHint": "(optional; by default 08:00 in the morning, 13:30 in the afternoon, 18:00 in the evening)", "minutesPerSlot": "Minutes per slot",
        "walkInReserve": "Walk-in reserve", "slots": "Slots/walk-in", "delete": "Delete", "rotaGrid": "Rota", "rotaNew": "To publish", "rotaPublished": "Published",
        "rotaConflicts": "Conflicts (to be solved before publishing)", "rotaPublish": "Publish these weeks", "rotaNothingNew": "Nothing to publish in these weeks.",
        "rotaShow": "Show", "weeks": "Weeks", "previousWeeks": "Earlier weeks", "nextWeeks": "Later weeks", "department": "Department", "doctorTime": "Time",
        "rotaPublishHint": "Once published, each session's slots open by the release rule (by default 15:00, 7 days before the visit) and patients can book them.",
        "rotaAddSession": "Extra session (outside the template, such as a peak day; published at once)", "rotaAddSessionButton": "Add and publish",
    ]
}
