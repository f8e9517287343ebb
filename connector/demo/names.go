package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

var surnames = []string{
	"Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков", "Фёдоров",
	"Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев",
	"Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев",
	"Романов", "Воробьёв", "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв",
	"Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев", "Антонов", "Тарасов",
	"Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев", "Герасимов", "Богданов", "Осипов", "Сидоров",
	"Матвеев", "Титов", "Марков", "Миронов", "Крылов", "Куликов", "Карпов", "Власов", "Мельников", "Денисов",
	"Гаврилов", "Тихонов", "Казаков", "Афанасьев", "Данилов", "Савельев", "Тимофеев", "Фомин", "Чернов", "Абрамов",
	"Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров", "Калинин", "Исаев", "Чернышёв", "Быков", "Маслов",
	"Родионов", "Коновалов", "Лазарев", "Воронин", "Климов", "Филатов", "Пономарёв", "Голубев", "Кудрявцев", "Прохоров",
	"Наумов", "Потапов", "Журавлёв", "Овчинников", "Трофимов", "Леонов", "Соболев", "Ермаков", "Колесников", "Гончаров",
	"Емельянов", "Никифоров", "Грачёв", "Котов", "Гришин", "Ефремов", "Архипов", "Громов", "Кириллов", "Малышев",
	"Панов", "Моисеев", "Румянцев", "Акимов", "Кондратьев", "Бирюков", "Горбунов", "Анисимов", "Ерёмин", "Тихомиров",
	"Галкин", "Лукьянов", "Михеев", "Скворцов", "Юдин", "Белоусов", "Нестеров", "Симонов", "Прокофьев", "Харитонов",
	"Князев", "Цветков", "Левин", "Митрофанов", "Воронов", "Аксёнов", "Софронов", "Мальцев", "Логинов", "Горшков",
	"Савин", "Краснов", "Майоров", "Демидов", "Елисеев", "Рыбаков", "Сафонов", "Плотников", "Дёмин", "Хохлов",
	"Островский", "Вишневский", "Покровский", "Рождественский", "Шевчук", "Ткаченко", "Бондаренко", "Кравец",
}

var maleNames = []string{
	"Александр", "Алексей", "Андрей", "Антон", "Артём", "Борис", "Вадим", "Валерий", "Василий", "Виктор",
	"Виталий", "Владимир", "Владислав", "Геннадий", "Георгий", "Григорий", "Даниил", "Денис", "Дмитрий", "Евгений",
	"Егор", "Иван", "Игорь", "Илья", "Кирилл", "Константин", "Леонид", "Максим", "Матвей", "Михаил",
	"Никита", "Николай", "Олег", "Павел", "Пётр", "Роман", "Руслан", "Сергей", "Станислав", "Степан",
	"Тимур", "Фёдор", "Юрий", "Ярослав", "Аркадий", "Эдуард", "Семён", "Лев", "Марк", "Глеб",
}

var femaleNames = []string{
	"Александра", "Алина", "Алла", "Анастасия", "Анна", "Валентина", "Валерия", "Вера", "Вероника", "Виктория",
	"Галина", "Дарья", "Диана", "Евгения", "Екатерина", "Елена", "Елизавета", "Жанна", "Зоя", "Инна",
	"Ирина", "Карина", "Кристина", "Ксения", "Лариса", "Лидия", "Любовь", "Людмила", "Маргарита", "Марина",
	"Мария", "Надежда", "Наталья", "Нина", "Оксана", "Ольга", "Полина", "Светлана", "София", "Тамара",
	"Татьяна", "Ульяна", "Юлия", "Яна", "Варвара", "Милана", "Алёна", "Эльвира", "Регина", "Олеся",
}

var comments = []string{
	"", "", "", "", "", "Консультация", "Лечение кариеса", "Профгигиена", "Удаление 3.8", "Контрольный осмотр",
	"Снятие швов", "Примерка коронки", "Лечение каналов 2 посещение", "Первичная консультация ортодонта", "ребёнок, с мамой",
}

func pick(rng *rand.Rand, list []string) string { return list[rng.IntN(len(list))] }

// surnameFor gives the feminine form of a masculine surname when needed.
func surnameFor(base string, male bool) string {
	if male {
		return base
	}
	switch {
	case strings.HasSuffix(base, "ский"):
		return strings.TrimSuffix(base, "ий") + "ая"
	case strings.HasSuffix(base, "ов"), strings.HasSuffix(base, "ев"), strings.HasSuffix(base, "ёв"), strings.HasSuffix(base, "ин"):
		return base + "а"
	}
	return base // Шевчук, Ткаченко: same for both
}

// baseSurname is the masculine form of a family's surname.
func baseSurname(s string, male bool) string {
	if male {
		return s
	}
	switch {
	case strings.HasSuffix(s, "ская"):
		return strings.TrimSuffix(s, "ая") + "ий"
	case strings.HasSuffix(s, "ова"), strings.HasSuffix(s, "ева"), strings.HasSuffix(s, "ёва"), strings.HasSuffix(s, "ина"):
		return strings.TrimSuffix(s, "а")
	}
	return s
}

func patronymic(father string, male bool) string {
	stem := father
	var m, f string
	switch {
	case father == "Лев":
		stem, m, f = "Льв", "ович", "овна"
	case father == "Пётр":
		stem, m, f = "Петр", "ович", "овна"
	case strings.HasSuffix(father, "ий"):
		stem, m, f = strings.TrimSuffix(father, "ий"), "ьевич", "ьевна"
	case strings.HasSuffix(father, "й"):
		stem, m, f = strings.TrimSuffix(father, "й"), "евич", "евна"
	case strings.HasSuffix(father, "ь"):
		stem, m, f = strings.TrimSuffix(father, "ь"), "евич", "евна"
	default:
		m, f = "ович", "овна"
	}
	if male {
		return stem + m
	}
	return stem + f
}

// birthdayText renders a birth date the ways staff and migrations leave it.
func birthdayText(rng *rand.Rand, born time.Time) *string {
	var s string
	switch r := rng.IntN(100); {
	case r < 60:
		s = born.Format("02.01.2006")
	case r < 80:
		s = born.Format("2006-01-02")
	case r < 85:
		s = born.Format("02.01.2006") + " 0:00:00"
	case r < 92:
		s = ""
	case r < 96:
		s = "01.01.1900"
	default:
		return nil
	}
	return &s
}

// phones returns MobilePhone and Phone in the mixed formats staff type.
func phones(rng *rand.Rand) (mobile, phone *string) {
	number := func() string {
		return fmt.Sprintf("9%02d%03d%02d%02d", rng.IntN(100), rng.IntN(1000), rng.IntN(100), rng.IntN(100))
	}
	format := func(n string) string {
		switch rng.IntN(8) {
		case 0:
			return "+7 (" + n[:3] + ") " + n[3:6] + "-" + n[6:8] + "-" + n[8:]
		case 1:
			return "8 " + n[:3] + " " + n[3:6] + " " + n[6:8] + " " + n[8:]
		case 2:
			return n
		case 3:
			return "8-" + n[:3] + "-" + n[3:6] + "-" + n[6:8] + "-" + n[8:]
		case 4:
			return "+7" + n
		case 5:
			return "8" + n + " (мама)"
		case 6:
			return " 8(" + n[:3] + ")" + n[3:] + " "
		default:
			return "+7 " + n[:3] + " " + n[3:6] + "-" + n[6:]
		}
	}
	s := func(v string) *string { return &v }
	switch r := rng.IntN(100); {
	case r < 60:
		mobile = s(format(number()))
	case r < 70:
		mobile = s(format(number()) + ", " + format(number()))
	case r < 78:
		mobile, phone = s(""), s(format(number()))
	case r < 85:
		mobile, phone = s(format(number())), s(fmt.Sprintf("2%02d-%02d-%02d", rng.IntN(100), rng.IntN(100), rng.IntN(100)))
	case r < 92:
		mobile = s("")
	default:
		// both NULL
	}
	return mobile, phone
}

func translitEmail(rng *rand.Rand, id int) string {
	hosts := []string{"mail.ru", "yandex.ru", "gmail.com", "bk.ru"}
	return fmt.Sprintf("patient%d@%s", id, hosts[rng.IntN(len(hosts))])
}
