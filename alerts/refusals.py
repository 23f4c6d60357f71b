"""Why a request was refused, in the configured language (``notify.language``, zh by default): the
``detail`` of every API error (:mod:`api.errors` words it), the reasons of a refused CSV line, the
messages of the domain errors an operator reads (:class:`alerts.registry.admin.AdminError`,
:class:`alerts.escalation.policy.PolicyError`, :class:`alerts.alarms.AlarmError`, a failed sign-in, a bad
community file: :class:`alerts.registry.community.CommunityFileError`), a wrong setting
(:class:`config.settings.SettingsError` names its code here), and what the ``shouwang`` command prints
(``cli_*``: its refusals and the lines a person reads; :mod:`api.cli`).

An error names a code of :data:`REFUSALS` and its parameters (:class:`Refusal`); ``str()`` of it is the
English text (logs), :meth:`Refusal.worded` the reader's. Every code has both languages side by
side, with the same fields (a test checks it). A parameter named ``role`` is worded as a role
(:func:`alerts.wording.role`); a parameter that is itself a :class:`Refusal` is worded in the same
language; one given as ``{"zh": ..., "en": ...}`` is taken in the reader's.
"""

from __future__ import annotations

from typing import Any, Self

from alerts.escalation.templates import Language
from alerts.wording import role

REFUSALS: dict[str, dict[Language, str]] = {
    # -- who may do what (api/auth.py, api/routes/auth.py) --------------------------------------------------
    "sign_in_first": {"zh": "请先登录", "en": "sign in first"},
    "role_may_not": {"zh": "{role}无权执行此操作", "en": "{role} may not do this"},
    "read_only": {"zh": "{role}只能查看，不能操作", "en": "{role} is read-only"},
    "wrong_credentials": {"zh": "用户名或密码错误", "en": "wrong name or password"},
    "locked_out": {"zh": "登录失败次数过多，请稍后再试", "en": "too many failed sign-ins; try again later"},
    "too_many_sign_ins": {"zh": "此地址登录过于频繁，请一分钟后再试",
                          "en": "too many sign-ins from this address; wait a minute"},
    "link_invalid": {"zh": "此链接无效或已过期：请用手机号和PIN码登录",
                     "en": "this link is not valid (or has expired): sign in with your phone and PIN"},
    # -- rows that are not there -------------------------------------------------------------------------
    "no_alarm": {"zh": "没有编号为{id}的告警", "en": "no alarm {id}"},
    "no_resident": {"zh": "没有编号为{id}的老人", "en": "no resident {id}"},
    "no_row": {"zh": "没有编号为{id}的{what}", "en": "no {what} {id}"},
    "no_policy": {"zh": "没有名为{name!r}的升级策略", "en": "no policy {name!r}"},
    "no_webhook": {"zh": "没有这个webhook", "en": "no such webhook"},
    "no_gateway": {"zh": "没有编号为{id}的网关", "en": "no gateway {id}"},
    "no_community": {"zh": "没有编号为{id}的社区", "en": "no community {id}"},
    "not_found": {"zh": "没有这个地址", "en": "Not Found"},
    "method_not_allowed": {"zh": "不支持此请求方法", "en": "Method Not Allowed"},
    # -- the alarm's state (alerts/alarms.py, alerts/transitions.py, alerts/infrastructure.py) -----------
    "alarm_resolved": {"zh": "告警{code}已处理完毕", "en": "alarm {code} is already resolved"},
    "alarm_not_held": {"zh": "告警{code}未被暂缓为疑似基础设施故障",
                       "en": "alarm {code} is not held as possibly infrastructure"},
    "outcome": {"zh": "处理结果只能是：{choices}", "en": "outcome must be one of {choices}"},
    # -- the admin API (alerts/registry/admin.py, api/routes/admin.py) ------------------------------------
    "exists": {"zh": "{what}已存在", "en": "{what} exists already"},
    "community_exists": {"zh": "名为{name!r}的社区已存在", "en": "a community named {name!r} exists"},
    "grid_named": {"zh": "名为{name!r}的网格", "en": "a grid named {name!r}"},
    "micro_grid_named": {"zh": "本网格中名为{name!r}的微网格", "en": "a micro-grid named {name!r} in this grid"},
    "resident_ref": {"zh": "ref为{ref!r}的老人", "en": "a resident with ref {ref!r}"},
    "device_id": {"zh": "编号为{id!r}的设备", "en": "a device with id {id!r}"},
    "worker_phone": {"zh": "手机号为{phone}的工作人员", "en": "a worker with phone {phone}"},
    "row_community": {"zh": "社区", "en": "community"}, "row_grid": {"zh": "网格", "en": "grid"},
    "row_micro_grid": {"zh": "微网格", "en": "micro-grid"}, "row_resident": {"zh": "老人", "en": "resident"},
    "row_device": {"zh": "设备", "en": "device"}, "row_contact": {"zh": "联系人", "en": "contact"},
    "row_worker": {"zh": "工作人员", "en": "worker"},
    "row_quarantined": {"zh": "隔离消息", "en": "quarantined message"},
    "row_other": {"zh": "记录", "en": "row"},
    "gateway_exists": {"zh": "外部编号为{id!r}的网关已存在",
                       "en": "a gateway with external id {id!r} exists already"},
    "out_of_range": {"zh": "纬度{latitude}/经度{longitude}超出范围",
                     "en": "latitude {latitude} / longitude {longitude} out of range"},
    "hours_positive": {"zh": "小时数必须大于0", "en": "hours must be positive"},
    "name_community": {"zh": "请指定社区（community_id）：目前{how}", "en": "name the community (community_id): "
                                                                         "there are {how}"},
    "communities_none": {"zh": "还没有社区", "en": "none yet"},
    "communities_several": {"zh": "有多个社区", "en": "several"},
    "grid_has_micro_grids": {"zh": "网格{name!r}下还有微网格", "en": "grid {name!r} still has micro-grids"},
    "micro_grid_has_residents": {"zh": "微网格{name!r}下还有老人", "en": "micro-grid {name!r} still has residents"},
    "unknown_fields": {"zh": "未知字段：{fields}", "en": "unknown fields: {fields}"},
    "both_coordinates": {"zh": "纬度和经度须同时填写或都不填", "en": "give both latitude and longitude, or neither"},
    "away_one_end": {"zh": "外出结束日期（until）和“直到下次活动”（until_activity）只能选一个",
                     "en": "give either an end date (until) or until_activity, not both"},
    "away_in_past": {"zh": "外出结束日期必须在将来", "en": "the end date of away mode must be in the future"},
    "device_kind": {"zh": "未知设备类型{kind!r}：只能是{choices}", "en": "unknown device kind {kind!r}: use {choices}"},
    "worker_role": {"zh": "未知角色{value!r}：只能是{choices}", "en": "unknown role {value!r}: use {choices}"},
    "room": {"zh": "房间只能是{choices}，不能是{text!r}", "en": "a room is one of {choices}, not {text!r}"},
    "window": {"zh": "时间段写作HH:MM-HH:MM（如07:00-10:00），不能是{text!r}",
               "en": "a time window is written HH:MM-HH:MM (e.g. 07:00-10:00), got {text!r}"},
    "window_empty": {"zh": "时间段的开始须早于结束，不能是{text!r}",
                     "en": "a time window needs a start before its end, got {text!r}"},
    "not_unknown_device": {"zh": "隔离消息{id}的原因是{reason}，不是来自未知设备",
                           "en": "quarantined message {id} is {reason}, not from an unknown device"},
    "device_taken": {"zh": "设备{device!r}已属于老人{resident}", "en": "device {device!r} already belongs to "
                                                                     "resident {resident}"},
    "required": {"zh": "{name}不能为空", "en": "{name} is required"},
    "form_field": {"zh": "请把CSV文件放在表单字段“file”中发送", "en": "send the CSV as the form field 'file'"},
    "too_large": {"zh": "文件超过10 MiB", "en": "the file is larger than 10 MiB"},
    "stored_value": {"zh": "有数值超出范围或无法保存（例如含NUL字符）",
                     "en": "a value is out of range or cannot be stored (e.g. a NUL character)"},
    # -- the CSV import (alerts/registry/csv_import.py) ---------------------------------------------------
    "nothing_imported": {"zh": "未导入任何数据", "en": "nothing imported"},
    "csv_not_utf8": {"zh": "不是UTF-8编码（{why}，第{at}字节）；请另存为“CSV UTF-8”",
                     "en": "not UTF-8 ({why} at byte {at}); save as CSV UTF-8"},
    "csv_fields": {"zh": "有{count}个字段，表头只有{header}个", "en": "{count} fields, the header has {header}"},
    "csv_ref_twice": {"zh": "ref {ref!r} 与第{line}行重复", "en": "ref {ref!r} is also on line {line}"},
    "csv_device_twice": {"zh": "设备{device!r}与第{line}行重复", "en": "device {device!r} is also on line {line}"},
    "csv_no_header": {"zh": "文件为空：第一行必须是表头", "en": "empty file: the first line must be the header"},
    "csv_unknown_columns": {"zh": "未知列{unknown}；可用的列：{columns}",
                            "en": "unknown columns {unknown}; the columns are {columns}"},
    "csv_missing_columns": {"zh": "缺少列{columns}", "en": "missing columns {columns}"},
    "csv_repeated_columns": {"zh": "重复的列{columns}", "en": "repeated columns {columns}"},
    "csv_community": {"zh": "请指定导入到哪个社区：目前{how}", "en": "name the community to import into (there are "
                                                                  "{how})"},
    "csv_device_owned": {"zh": "设备{device!r}属于老人{resident!r}；请先在那里解除绑定",
                         "en": "device {device!r} belongs to resident {resident!r}; unlink it there first"},
    "csv_empty": {"zh": "文件中没有老人", "en": "no residents in the file"},
    "csv_ref_empty": {"zh": "ref为空（老人的固定编号）", "en": "ref is empty (a stable id for the resident)"},
    "csv_name_empty": {"zh": "name（姓名）为空", "en": "name is empty"},
    "csv_grid_both": {"zh": "grid和micro_grid须同时填写或都不填", "en": "give both grid and micro_grid, or neither"},
    "csv_slash": {"zh": "网格和微网格名称不能含“/”", "en": "grid and micro-grid names cannot contain '/'"},
    "csv_consent": {"zh": "consent {value!r} 不是日期（YYYY-MM-DD）", "en": "consent {value!r} is not a date "
                                                                            "(YYYY-MM-DD)"},
    "csv_routine": {"zh": "routine：{why}", "en": "routine: {why}"},
    "csv_device_kind": {"zh": "设备{device!r}：未知类型{kind!r}（motion、door、button或meter）",
                        "en": "device {device!r}: unknown kind {kind!r} (motion, door, button or meter)"},
    "csv_device_id": {"zh": "{part!r}中缺少设备编号", "en": "device id missing in {part!r}"},
    "csv_device": {"zh": "设备{device!r}：{why}", "en": "device {device!r}: {why}"},
    "csv_contact_both": {"zh": "{prefix}_name和{prefix}_phone须同时填写或都不填",
                         "en": "give both {prefix}_name and {prefix}_phone, or neither"},
    "csv_number": {"zh": "{name} {value!r} 不是数字", "en": "{name} {value!r} is not a number"},
    "csv_number_range": {"zh": "{name} {value} 超出范围（{low:g}至{high:g}）",
                         "en": "{name} {value} is out of range ({low:g} to {high:g})"},
    # -- escalation policies (alerts/escalation/policy.py) ------------------------------------------------
    "policy_needs": {"zh": "升级策略缺少{field!r}", "en": "policy needs {field!r}"},
    "policy_no_steps": {"zh": "升级策略{name!r}没有步骤", "en": "policy {name!r} has no steps"},
    "policy_repeat_from": {"zh": "升级策略{name!r}：repeat_from须是1至{count}之间的步骤号",
                           "en": "policy {name!r}: repeat_from must be a step number 1..{count}"},
    "policy_hold": {"zh": "升级策略{name!r}：hold：{why}", "en": "policy {name!r}: hold: {why}"},
    "policy_hold_positive": {"zh": "升级策略{name!r}：hold必须大于0", "en": "policy {name!r}: hold must be positive"},
    "policy_enabled": {"zh": "升级策略{name!r}：enabled只能是true或false，不能是{value!r}",
                       "en": "policy {name!r}: enabled must be true or false; got {value!r}"},
    "notice_repeats": {"zh": "升级策略{name!r}是低调提醒，只发一次：请删除repeat_from",
                       "en": "policy {name!r} is a low-key notice, sent once: remove repeat_from"},
    "notice_target": {"zh": "升级策略{name!r}是低调提醒：不联系家属或老人本人；第{step}步联系了{target}",
                      "en": "policy {name!r} is a low-key notice: never the family or the resident; "
                            "step {step} contacts {target}"},
    "notice_voice": {"zh": "升级策略{name!r}是低调提醒：只发短信，不打电话；第{step}步给{target}打电话",
                     "en": "policy {name!r} is a low-key notice: SMS only, never a call; step {step} "
                           "calls {target} by voice"},
    "step_target": {"zh": "第{step}步：联系对象只能是{choices}，不能是{target!r}",
                    "en": "step {step}: target must be one of {choices}; got {target!r}"},
    "step_channels": {"zh": "第{step}步：渠道只能是voice和/或sms，不能是{channels}",
                      "en": "step {step}: channels must be voice and/or sms; got {channels}"},
    "step_nobody": {"zh": "第{step}步没有联系任何人", "en": "step {step} contacts nobody"},
    "step_wait": {"zh": "第{step}步：{why}", "en": "step {step}: {why}"},
    "step_wait_positive": {"zh": "第{step}步：等待时间必须大于0", "en": "step {step}: wait must be positive"},
    # -- a request that does not match the API's schemas (422; the pydantic error type after "invalid.") ------
    "invalid_request": {"zh": "请求不符合接口定义", "en": "the request does not match the API"},
    "invalid.missing": {"zh": "缺少此字段", "en": "Field required"},
    "invalid.string_too_long": {"zh": "最多{max_length}个字符", "en": "String should have at most {max_length} "
                                                                   "characters"},
    "invalid.string_too_short": {"zh": "至少{min_length}个字符", "en": "String should have at least {min_length} "
                                                                    "characters"},
    "invalid.too_long": {"zh": "最多{max_length}项", "en": "List should have at most {max_length} items"},
    "invalid.too_short": {"zh": "至少{min_length}项", "en": "List should have at least {min_length} items"},
    "invalid.string_type": {"zh": "应为文本", "en": "Input should be a valid string"},
    "invalid.string_pattern_mismatch": {"zh": "格式不符（{pattern}）", "en": "String should match pattern "
                                                                          "'{pattern}'"},
    "invalid.int_parsing": {"zh": "应为整数", "en": "Input should be a valid integer"},
    "invalid.int_type": {"zh": "应为整数", "en": "Input should be a valid integer"},
    "invalid.int_from_float": {"zh": "应为整数（不能有小数）", "en": "Input should be a valid integer"},
    "invalid.float_parsing": {"zh": "应为数字", "en": "Input should be a valid number"},
    "invalid.float_type": {"zh": "应为数字", "en": "Input should be a valid number"},
    "invalid.bool_parsing": {"zh": "应为true或false", "en": "Input should be a valid boolean"},
    "invalid.bool_type": {"zh": "应为true或false", "en": "Input should be a valid boolean"},
    "invalid.enum": {"zh": "只能是{expected}", "en": "Input should be {expected}"},
    "invalid.literal_error": {"zh": "只能是{expected}", "en": "Input should be {expected}"},
    "invalid.greater_than": {"zh": "应大于{gt}", "en": "Input should be greater than {gt}"},
    "invalid.greater_than_equal": {"zh": "应大于或等于{ge}", "en": "Input should be greater than or equal to {ge}"},
    "invalid.less_than": {"zh": "应小于{lt}", "en": "Input should be less than {lt}"},
    "invalid.less_than_equal": {"zh": "应小于或等于{le}", "en": "Input should be less than or equal to {le}"},
    "invalid.datetime_parsing": {"zh": "应为日期时间（ISO 8601，如2026-12-01T08:00:00Z）",
                                 "en": "Input should be a valid datetime"},
    "invalid.datetime_from_date_parsing": {"zh": "应为日期时间（ISO 8601，如2026-12-01T08:00:00Z）",
                                           "en": "Input should be a valid datetime or date"},
    "invalid.date_from_datetime_parsing": {"zh": "应为日期（YYYY-MM-DD）", "en": "Input should be a valid date"},
    "invalid.date_parsing": {"zh": "应为日期（YYYY-MM-DD）", "en": "Input should be a valid date"},
    "invalid.json_invalid": {"zh": "JSON格式错误", "en": "JSON decode error"},
    "invalid.model_attributes_type": {"zh": "应为JSON对象", "en": "Input should be a valid dictionary"},
    "invalid.dict_type": {"zh": "应为JSON对象", "en": "Input should be a valid dictionary"},
    "invalid.list_type": {"zh": "应为列表", "en": "Input should be a valid list"},
    "invalid.extra_forbidden": {"zh": "不允许此字段", "en": "Extra inputs are not permitted"},
    "invalid.value_error": {"zh": "取值无效：{why}", "en": "Value error, {why}"},
    "body_unreadable": {"zh": "无法读取请求内容（不是JSON或不是UTF-8）", "en": "There was an error parsing the body"},
    # -- the community file of `shouwang load` (alerts/registry/community.py), also behind the CSV import -----
    "community_name": {"zh": "[community]缺少name（社区名称）", "en": "[community] needs a name"},
    "community_no_grid": {"zh": "工作人员{name!r}：没有网格{grid!r}", "en": "worker {name!r}: no grid {grid!r}"},
    "community_ref": {"zh": "老人{name!r}缺少ref（固定编号）", "en": "resident {name!r} needs a ref (a stable id)"},
    "community_away_zone": {"zh": "老人{ref!r}：away_until须带时区", "en": "resident {ref!r}: away_until needs a "
                                                                        "time zone"},
    "community_gateway_id": {"zh": "网关{item!r}缺少id（Zigbee2MQTT：即base topic）",
                             "en": "gateway {item!r} needs an id (Zigbee2MQTT: the base topic)"},
    "community_gateway_kind": {"zh": "网关{id!r}：kind只能是{choices}", "en": "gateway {id!r}: kind must be one of "
                                                                          "{choices}"},
    "community_no_micro_grid": {"zh": "没有微网格{name!r}；请写作“网格名/微网格名”",
                                "en": "no micro-grid {name!r}; write it as 'grid name/micro-grid name'"},
    "community_entry": {"zh": "{what}：{why}", "en": "{what}: {why}"},
    "community_dwell": {"zh": "{what}：{name}须为正数（小时），不能是{value!r}",
                        "en": "{what}: {name} must be a positive number of hours, got {value!r}"},
    "community_grid": {"zh": "网格{name!r}", "en": "grid {name!r}"},
    "community_resident": {"zh": "老人{ref!r}", "en": "resident {ref!r}"},
    "community_device": {"zh": "设备{id!r}", "en": "device {id!r}"},
    "community_worker": {"zh": "工作人员{name!r}", "en": "worker {name!r}"},
    "community_missing": {"zh": "文件中有一项缺少{key!r}", "en": "an entry of the file has no {key!r}"},
    # -- the settings (config/settings.py: SettingsError's code; config cannot import this table) -------------
    "settings_missing": {"zh": "找不到配置文件{path!r}", "en": "config file {path!r} not found"},
    "settings_unreadable": {"zh": "无法读取配置文件{path!r}：{why}",
                            "en": "config file {path!r} cannot be read: {why}"},
    "settings_not_toml": {"zh": "配置文件{path!r}不是有效的TOML：{why}",
                          "en": "config file {path!r} is not valid TOML: {why}"},
    "settings_env_file": {"zh": "{key}指向的文件{file!r}无法读取：{why}",
                          "en": "{key} names {file!r}, which cannot be read: {why}"},
    "settings_env_json": {"zh": "{key}看似JSON，但格式有误：{why}",
                          "en": "{key} looks like JSON but is not valid: {why}"},
    "settings_env_conflict": {"zh": "{key}与另一个SHOUWANG_变量冲突", "en": "{key} conflicts with another SHOUWANG_ "
                                                                          "variable"},
    "settings_invalid_in": {"zh": "配置文件{path!r}中的设置有误：", "en": "invalid settings in {path}:"},
    "settings_invalid": {"zh": "设置有误：", "en": "invalid settings:"},
    "settings_problem": {"zh": "  {where}（环境变量{env}）：{why}", "en": "  {where} (env {env}): {why}"},
    "settings_unknown": {"zh": "未知设置（拼写错误？）", "en": "unknown setting (a typo?)"},
    "settings_text": {"zh": "{text}", "en": "{text}"},
    # -- the `shouwang` command (api/cli.py): what it refuses, and the lines a person reads ------------------
    "cli_share_group": {"zh": "多个消费进程需要设置mqtt.share_group（共享订阅）",
                        "en": "several consumers need mqtt.share_group (a shared subscription)"},
    "cli_consumers_postgres": {"zh": "多个消费进程需要PostgreSQL（SQLite只供单个进程使用）",
                               "en": "several consumers need PostgreSQL (SQLite is for one process)"},
    "cli_port_in_use": {"zh": "端口{port}已被占用（另一个演示或服务？）：请先停止它，或用--port N换一个端口"
                              "（--port 0自动选择空闲端口）",
                        "en": "port {port} is already in use (another demo or service?): stop it, or choose another "
                              "port with --port N (--port 0 picks a free one)"},
    "cli_port_taken": {"zh": "演示启动期间端口{port}被占用：请重试，或用--port N指定端口",
                       "en": "port {port} was taken while the demo started: try again, or give --port N"},
    "cli_clock_unset": {"zh": "注意：手动时钟从未设置，老人的看护从其默认时刻{now}算起；请先设置时钟（shouwang "
                              "clock set INSTANT，或clock.start）再重新加载，否则各人的时间窗口都从该时刻起算",
                        "en": "note: the manual clock was never set, so the residents are watched from its default "
                              "{now}; set the clock first (shouwang clock set INSTANT, or clock.start) and load "
                              "again, or their windows count from that instant"},
    "cli_clock_manual": {"zh": "clock命令需要clock.mode = 'manual'", "en": "the clock command needs clock.mode = "
                                                                          "'manual'"},
    "cli_clock_value": {"zh": "clock {action}需要一个值（set用ISO时刻，advance用时长）",
                        "en": "clock {action} needs a value (an ISO instant for set, a duration for advance)"},
    "cli_instant": {"zh": "{value!r}不是ISO时刻，例如2026-11-23T08:00:00+08:00",
                    "en": "{value!r} is not an ISO instant, e.g. 2026-11-23T08:00:00+08:00"},
    "cli_instant_zone": {"zh": "请给出带时区的时刻，例如2026-11-23T08:00:00+08:00",
                         "en": "give the instant with its zone, e.g. 2026-11-23T08:00:00+08:00"},
    "duration": {"zh": "{value!r}不是时长：请写秒数（3600）或如'90s'、'10m'、'14h'、'90d'",
                     "en": "{value!r} is not a duration: write seconds (3600) or e.g. '90s', '10m', '14h', '90d'"},
    "cli_start_zone": {"zh": "--start须带时区，例如2026-11-23T16:00:00+08:00",
                       "en": "--start needs a time zone, e.g. 2026-11-23T16:00:00+08:00"},
    "cli_dry_run_until": {"zh": "--dry-run只打印有限的时间线：请给出--until",
                          "en": "--dry-run prints a bounded timeline: give --until"},
    "cli_load_loopback": {"zh": "压测模式只向本机（127.0.0.1）的broker发布，不能是{host}",
                          "en": "load mode publishes only to a broker on this machine (127.0.0.1), not {host}"},
    "cli_load_bound": {"zh": "压测模式需要上限：--count N和/或--duration S",
                       "en": "load mode needs a bound: --count N and/or --duration S"},
    "cli_password": {"zh": "请给出至少8个字符的密码（--password或SHOUWANG_NEW_PASSWORD）",
                     "en": "give a password of at least 8 characters (--password or SHOUWANG_NEW_PASSWORD)"},
    "cli_no_worker": {"zh": "没有手机号为{phone}的工作人员", "en": "no worker with phone {phone}"},
    "cli_no_file": {"zh": "找不到文件{file!r}", "en": "no such file: {file!r}"},
    "cli_file_denied": {"zh": "无权访问{file!r}", "en": "permission denied: {file!r}"},
    "cli_os_error": {"zh": "系统错误：{why}", "en": "{why}"},
    "cli_toml": {"zh": "TOML格式有误：{why}", "en": "not valid TOML: {why}"},
    "cli_not_toml": {"zh": "文件{file!r}不是有效的TOML：{why}", "en": "{file!r} is not valid TOML: {why}"},
    "cli_stopped": {"zh": "已停止", "en": "stopped"},
    "cli_db_upgraded": {"zh": "数据库（{url}）已升级到最新版本", "en": "database at {url} is at the newest migration"},
    "cli_loaded": {"zh": "已加载，新建：{counts}", "en": "loaded: {counts}"},
    "cli_count_grids": {"zh": "网格{n}个", "en": "{n} grids"},
    "cli_count_micro_grids": {"zh": "微网格{n}个", "en": "{n} micro_grids"},
    "cli_count_workers": {"zh": "工作人员{n}名", "en": "{n} workers"},
    "cli_count_residents": {"zh": "老人{n}名", "en": "{n} residents"},
    "cli_count_devices": {"zh": "设备{n}个", "en": "{n} devices"},
    "cli_count_contacts": {"zh": "联系人{n}名", "en": "{n} contacts"},
    "cli_count_gateways": {"zh": "网关{n}个", "en": "{n} gateways"},
    "cli_user_saved": {"zh": "用户{username}（{role}）已保存", "en": "user {username} ({role}) saved"},
    "cli_pin_set": {"zh": "已为{phone}设置PIN码", "en": "PIN set for {phone}"},
    "cli_published": {"zh": "已发布{homes}户的{sent}条消息，从{start}到{until}",
                      "en": "published {sent} messages of {homes} homes from {start} to {until}"},
    "cli_published_load": {"zh": "{seconds:.1f}秒内发布了{homes}户的{sent}条消息"
                                 "（{rate:.0f}条/秒，目标{asked:g}条/秒）",
                           "en": "published {sent} messages in {seconds:.1f} s ({rate:.0f}/s, asked {asked:g}/s) "
                                 "from {homes} homes"},
    "cli_demo": {"zh": "\n守望演示：{homes}户模拟家庭，时间以{speed:g}倍速运行（14小时无活动只需{window:.0f}秒）。\n"
                       "  {name}（{ref}）已无动静：预计{expect:.0f}秒内出现无活动告警，先是无人接听的确认电话，"
                       "再呼叫网格员和家属；\n"
                       "  网格员一两分钟内接听，按1，并在15至56分钟后（模拟时间）到达现场。电话和短信打印在这里"
                       "（console）。\n"
                       "  大屏：      http://127.0.0.1:{port}/screen?token={screen}\n"
                       "  手机页面：  http://127.0.0.1:{port}/m/（网格员{worker}，PIN码{pin}）\n"
                       "  API：       http://127.0.0.1:{port}/docs（管理员令牌在{tokens}中）\n"
                       "  健康检查：  http://127.0.0.1:{port}/healthz\n"
                       "按Ctrl+C停止。\n",
                 "en": "\nShouwang demo: {homes} simulated homes, time runs {speed:g}x (14 h of silence takes "
                       "{window:.0f} s).\n"
                       "  {name} ({ref}) has fallen silent: expect an inactivity alarm within {expect:.0f} s, a "
                       "check call nobody answers, then the grid worker and family called;\n"
                       "  the grid worker answers within a minute or two, presses 1 and is on site 15 to 56 minutes "
                       "later\n  (simulated). Calls and SMS are printed here (console).\n"
                       "  Map screen:  http://127.0.0.1:{port}/screen?token={screen}\n"
                       "  Phone page:  http://127.0.0.1:{port}/m/  (grid worker {worker}, PIN {pin})\n"
                       "  API:         http://127.0.0.1:{port}/docs  (admin token in {tokens})\n"
                       "  Health:      http://127.0.0.1:{port}/healthz\n"
                       "Press Ctrl+C to stop.\n"},
    # -- a message not (yet) given a code: shown as it is ----------------------------------------------------
    "text": {"zh": "{text}", "en": "{text}"},
}


def word(code: str, language: Language, params: dict[str, Any] | None = None) -> str:
    """The text of ``code`` with ``params`` in ``language`` (an unknown code is shown as it is)."""
    template = REFUSALS.get(code)
    if template is None:
        return code
    for tongue in dict.fromkeys((language, "en")):  # a parameter the text cannot take: English, then the code
        values = {k: _value(k, v, tongue) for k, v in (params or {}).items()}
        try:
            return template[tongue].format(**values)
        except (KeyError, IndexError, ValueError):
            continue
    return code


def _value(name: str, value: Any, language: Language) -> Any:
    if isinstance(value, Refusal):
        return value.worded(language)
    if isinstance(value, dict) and set(value) == {"zh", "en"}:
        return value[language]
    if name == "role" and isinstance(value, str):
        return role(value, language)
    return value


class Refusal(Exception):
    """An error a person reads: a code of :data:`REFUSALS` and its parameters. Given text that is not a
    code, it carries that text as it is (code ``text``)."""

    def __init__(self, code: str, /, **params: Any) -> None:
        if code not in REFUSALS:
            code, params = "text", {"text": code}
        self.code = code
        self.params = params
        super().__init__(word(code, "en", params))

    @classmethod
    def of(cls, error: BaseException) -> Self:
        """``error`` as this kind of refusal (its code kept when it has one)."""
        if isinstance(error, Refusal):
            return cls(error.code, **error.params)
        return cls(str(error))

    def worded(self, language: Language) -> str:
        return word(self.code, language, self.params)


def worded(error: BaseException | str, language: Language) -> str:
    """Any error's message for the reader: a :class:`Refusal` in ``language``, anything else as it is."""
    return error.worded(language) if isinstance(error, Refusal) else str(error)


class InvalidValue(Refusal, ValueError):
    """A value a request schema refuses (a pydantic validator raises it; the 422 handler words it)."""
